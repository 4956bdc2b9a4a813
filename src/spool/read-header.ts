// Reads the options of a `-H` file without following links and without blocking on FIFOs.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { type HeaderInfo, parseHeader } from './header.js';

const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const FIRST = 4096;
const LIMIT = 1 << 20; // options beyond 1 MiB (huge ACL variables) are not worth reading

export type HeaderRead =
  | { ok: true; size: number; ino: number; mtimeMs: number; info: HeaderInfo }
  | { ok: false; missing: boolean; size?: number; ino?: number; mtimeMs?: number; error: string };

let scratch = Buffer.allocUnsafe(FIRST);

/** The quiet lstat before an event's read: a result when there is nothing to read. */
function preCheck(path: string): HeaderRead | null {
  let pre: Stats | undefined;
  try {
    pre = lstatSync(path, { throwIfNoEntry: false });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, missing: code === 'ENOTDIR', error: code ?? String(e) };
  }
  if (!pre) return { ok: false, missing: true, error: 'ENOENT' };
  if (!pre.isFile()) {
    return {
      ok: false,
      missing: false,
      size: pre.size,
      ino: pre.ino,
      mtimeMs: pre.mtimeMs,
      error: 'not a regular file',
    };
  }
  return null;
}

/**
 * `listed`: the name was just listed (a full scan), so it is very likely there: no lstat first.
 * Otherwise (an event: every delivery removes a header) a quiet lstat first, so a header that is
 * gone costs no exception. Either way the open never follows a link and never blocks (FIFO), and
 * anything but a regular file is reported, not read.
 */
export function readHeaderSync(path: string, listed = false): HeaderRead {
  if (!listed) {
    const pre = preCheck(path);
    if (pre) return pre;
  }
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, missing: code === 'ENOENT' || code === 'ENOTDIR', error: code ?? String(e) };
  }
  try {
    const st = fstatSync(fd);
    const base = { size: st.size, ino: st.ino, mtimeMs: st.mtimeMs };
    if (!st.isFile()) return { ok: false, missing: false, ...base, error: 'not a regular file' };
    let want = Math.min(Math.max(st.size, 1), FIRST);
    for (;;) {
      if (scratch.length < want) scratch = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, scratch, got, want - got, got);
        if (n === 0) break;
        got += n;
      }
      const eof = got < want || got >= st.size;
      const r = parseHeader(scratch.subarray(0, got), eof);
      if (r.ok) return { ok: true, ...base, info: r.info };
      if (!r.incomplete || want >= LIMIT) return { ok: false, missing: false, ...base, error: r.error };
      want = Math.min(want * 4, LIMIT);
    }
  } catch (e) {
    return { ok: false, missing: false, error: (e as NodeJS.ErrnoException).code ?? String(e) };
  } finally {
    closeSync(fd);
  }
}
