// Worker thread running one part of a full scan, so a pass over 100k messages never
// blocks the main loop. It runs at a lower CPU priority than the main thread (Linux
// lets setpriority address a single thread), so scrapes and reactions win the CPU.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { type DetailChunk, type ListChunk, type MessageChunk, Scanner } from './scan.js';

export type ToWorker =
  | { type: 'scan'; scanId: number; details: boolean; readHeaders: boolean }
  /** the go for pass 2; with `split`, about half the names are handed off to a second worker */
  | { type: 'details'; scanId: number; split: boolean }
  /** pass 2 over directories another worker listed */
  | { type: 'detailsOf'; scanId: number; raw: ListChunk[]; readHeaders: boolean };
export type FromWorker =
  | { type: 'list'; scanId: number; chunk: MessageChunk }
  | { type: 'listed'; scanId: number; listMs: number; names: number; dirs: number; errors: string[] }
  | { type: 'detail'; scanId: number; chunk: DetailChunk }
  | { type: 'handoff'; scanId: number; raw: ListChunk[]; readHeaders: boolean }
  | { type: 'done'; scanId: number; detailMs: number; headersRead: number; errors: string[] }
  | { type: 'failed'; scanId: number; code: string; message: string };

const { spool, part, parts, nice } = workerData as {
  spool: string;
  part: number;
  parts: number;
  nice: number;
};
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (nice && tid > 0) setPriority(tid, nice);
} catch {
  // not Linux, or not allowed: the scan still runs, at normal priority
}
const scanner = new Scanner(spool, part, parts);
const port = parentPort!;

let pending: { scanId: number; raw: ListChunk[]; readHeaders: boolean } | null = null;

function details(scanId: number, raw: ListChunk[], readHeaders: boolean): void {
  const errors: string[] = [];
  const t1 = performance.now();
  const headersRead = scanner.details(
    raw,
    readHeaders,
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
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'details') {
    // pass 2 of a scan whose listing waited for the go (the first scan: the agent finishes starting first)
    if (pending && pending.scanId === m.scanId) {
      const { raw, readHeaders } = pending;
      if (m.split && raw.length > 1) {
        // balanced by names: directories dealt out largest first to whichever half holds fewer
        const mine: ListChunk[] = [];
        const theirs: ListChunk[] = [];
        let a = 0;
        let b = 0;
        for (const c of [...raw].sort((x, y) => y.names.length - x.names.length)) {
          if (a <= b) {
            mine.push(c);
            a += c.names.length;
          } else {
            theirs.push(c);
            b += c.names.length;
          }
        }
        port.postMessage({
          type: 'handoff',
          scanId: m.scanId,
          raw: theirs,
          readHeaders,
        } satisfies FromWorker);
        details(m.scanId, mine, readHeaders);
      } else details(m.scanId, raw, readHeaders);
    }
    pending = null;
    return;
  }
  if (m.type === 'detailsOf') {
    details(m.scanId, m.raw, m.readHeaders);
    return;
  }
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
  if (!m.details) {
    pending = { scanId, raw: res.raw, readHeaders: m.readHeaders };
    return;
  }
  details(scanId, res.raw, m.readHeaders);
});
