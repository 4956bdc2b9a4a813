// Writes messages in Exim's on-disk layout: used by the demo, the tests and the benchmarks.
// Follows Exim's order: `-D` first, then `hdr.<id>` renamed onto `<id>-H` (the commit point).
import { closeSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeMessageId, splitDirOf } from './exim-id.js';

export interface FixtureMessage {
  id: string;
  /** directory the files live in, relative to the spool: `input` or `input/<c>` */
  dir: string;
}

export interface WriteOptions {
  split?: boolean;
  format?: 'old' | 'new';
  bodyBytes?: number;
  frozen?: boolean;
  journal?: boolean;
  msglog?: boolean;
  /** extra `-aclc` variable value, to put long options before `-frozen` */
  aclValue?: string;
  arrival?: number;
}

let seqCounter = 0;

export function headerText(id: string, o: { frozen?: boolean; aclValue?: string; arrival: number }): string {
  let s = `${id}-H\nexim 101 101\n<sender@example.com>\n${o.arrival} 0\n`;
  s += '-received_time_usec .000000\n-ident exim\n-received_protocol local\n';
  if (o.aclValue !== undefined) s += `-aclc 0 ${Buffer.byteLength(o.aclValue, 'latin1')}\n${o.aclValue}\n`;
  s += '-body_linecount 1\n-max_received_linelength 40\n-deliver_firsttime\n';
  if (o.frozen) s += `-frozen ${o.arrival + 1}\n`;
  s += 'XX\n1\nrcpt@example.net\n\n036P Received: by test with local\n020  Subject: fixture\n';
  return s;
}

export function ensureSpoolDirs(spool: string): void {
  mkdirSync(join(spool, 'input'), { recursive: true, mode: 0o750 });
  mkdirSync(join(spool, 'msglog'), { recursive: true, mode: 0o750 });
  mkdirSync(join(spool, 'db'), { recursive: true, mode: 0o750 });
}

function writeFile(path: string, data: string | Buffer): void {
  const fd = openSync(path, 'wx', 0o640);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  } finally {
    closeSync(fd);
  }
}

export function writeMessage(spool: string, o: WriteOptions = {}): FixtureMessage {
  const arrival = o.arrival ?? Math.floor(Date.now() / 1000);
  const id = makeMessageId(arrival, seqCounter++ + process.pid * 1000, o.format ?? 'old');
  const rel = o.split ? join('input', splitDirOf(id)) : 'input';
  const dir = join(spool, rel);
  if (o.split) mkdirSync(dir, { recursive: true, mode: 0o750 });
  const body = Buffer.alloc(o.bodyBytes ?? 256, 'x');
  writeFile(join(dir, `${id}-D`), Buffer.concat([Buffer.from(`${id}-D\n`), body]));
  if (o.journal) writeFile(join(dir, `${id}-J`), 'rcpt@example.net\n');
  const tmp = join(dir, `hdr.${id}`);
  writeFile(tmp, headerText(id, { frozen: o.frozen, aclValue: o.aclValue, arrival }));
  renameSync(tmp, join(dir, `${id}-H`));
  if (o.msglog) {
    const ml = o.split ? join(spool, 'msglog', splitDirOf(id)) : join(spool, 'msglog');
    mkdirSync(ml, { recursive: true, mode: 0o750 });
    writeFile(join(ml, id), `${new Date(arrival * 1000).toISOString()} Received from sender@example.com\n`);
  }
  return { id, dir: rel };
}

/** Removes a message the way a delivery does: `-H` first (it stops being queued), then `-D`, `-J`. */
export function removeMessage(spool: string, m: FixtureMessage): void {
  for (const suffix of ['-H', '-D', '-J']) {
    try {
      unlinkSync(join(spool, m.dir, m.id + suffix));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

/** Rewrites `-H` as Exim does when freezing or thawing: write `hdr.<id>`, rename onto `-H`. */
export function rewriteHeader(spool: string, m: FixtureMessage, frozen: boolean, arrival?: number): void {
  const dir = join(spool, m.dir);
  const tmp = join(dir, `hdr.${m.id}`);
  writeFile(tmp, headerText(m.id, { frozen, arrival: arrival ?? Math.floor(Date.now() / 1000) }));
  renameSync(tmp, join(dir, `${m.id}-H`));
}
