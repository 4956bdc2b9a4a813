// Worker thread running full scans, so a pass over 100k messages never blocks the main loop.
import { parentPort, workerData } from 'node:worker_threads';
import { type MessageChunk, Scanner } from './scan.js';

export type ToWorker = { type: 'scan'; scanId: number; details: boolean };
export type FromWorker =
  | { type: 'list'; scanId: number; chunk: MessageChunk }
  | { type: 'listed'; scanId: number; listMs: number; names: number; dirs: number; errors: string[] }
  | { type: 'detail'; scanId: number; chunk: import('./scan.js').DetailChunk }
  | { type: 'done'; scanId: number; detailMs: number; headersRead: number; errors: string[] }
  | { type: 'failed'; scanId: number; code: string; message: string };

const scanner = new Scanner((workerData as { spool: string }).spool);
const port = parentPort!;

port.on('message', (m: ToWorker) => {
  if (m.type !== 'scan') return;
  const { scanId } = m;
  const errors: string[] = [];
  const t0 = performance.now();
  let res: ReturnType<Scanner['list']>;
  try {
    res = scanner.list(
      (chunk) => port.postMessage({ type: 'list', scanId, chunk } satisfies FromWorker),
      errors,
    );
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    port.postMessage({
      type: 'failed',
      scanId,
      code: err.code ?? 'EIO',
      message: err.message,
    } satisfies FromWorker);
    return;
  }
  const listMs = performance.now() - t0;
  port.postMessage({
    type: 'listed',
    scanId,
    listMs,
    names: res.names,
    dirs: res.subs.length,
    errors: errors.splice(0),
  } satisfies FromWorker);
  if (!m.details) return;
  const t1 = performance.now();
  const headersRead = scanner.details(
    res.raw,
    (chunk) => port.postMessage({ type: 'detail', scanId, chunk } satisfies FromWorker),
    errors,
  );
  port.postMessage({
    type: 'done',
    scanId,
    detailMs: performance.now() - t1,
    headersRead,
    errors,
  } satisfies FromWorker);
});
