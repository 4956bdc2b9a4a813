// Backup layout (SPEC "Save and restore"):
//   <DIR>/gen-<UTC yyyymmddThhmmssZ>/manifest.json   one entry per file
//   <DIR>/gen-.../input/..., msglog/...              the files, spool-relative
//   <DIR>/current -> gen-...                         newest complete generation (symlink, replaced atomically)
//   <DIR>/gen-.../restored                           written once that generation was restored completely
//
// manifest.json is one JSON document written one entry per line, so that it
// can be written and read as a stream (100k messages make 40 MB of manifest):
//   {"format":"spool-guard-manifest/1",...,"dirs":[...],"files":[
//   {"id":"...","path":"input/A/...-D","size":1,"mode":416,"uid":103,"gid":106,"mtime":"1733230000.123456789","sha256":"..."},
//   ...
//   ],"complete":true,"messages":N,"fileCount":M,"bytes":B}
// The trailer line is written last; a manifest without it (or whose counts do
// not match its entries) is incomplete and never restored.
import { closeSync, fstatSync, openSync, readlinkSync, readSync, constants as C } from 'node:fs';
import { join } from 'node:path';

export const MANIFEST_FORMAT = 'spool-guard-manifest/1';
export const MANIFEST = 'manifest.json';
export const CURRENT = 'current';
export const RESTORED_MARK = 'restored';
export const GEN_RE = /^gen-\d{8}T\d{6}Z$/;
export const PARTIAL_PREFIX = '.partial-';

export interface DirEntry {
  path: string;
  mode: number;
  uid: number;
  gid: number;
}

export interface FileEntry {
  /** message id the file belongs to */
  id: string;
  path: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** seconds since the epoch with nanoseconds, as a decimal string (exact) */
  mtime: string;
  sha256: string;
}

export interface ManifestHeader {
  format: string;
  created: string;
  spool: string;
  host: string;
  dirs: DirEntry[];
}

export interface ManifestTrailer {
  complete: true;
  messages: number;
  fileCount: number;
  bytes: number;
}

export function genName(epochMs: number): string {
  const d = new Date(epochMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `gen-${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`
  );
}

export function genTime(name: string): number {
  const m = /^gen-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(name);
  if (!m) return Number.NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

export function mtimeString(mtimeNs: bigint): string {
  const s = mtimeNs / 1_000_000_000n;
  const ns = mtimeNs % 1_000_000_000n;
  return `${s}.${String(ns).padStart(9, '0')}`;
}

/**
 * Seconds as a double for fs.futimes, which keeps microseconds (libuv truncates
 * seconds * 1e6). Aiming at the middle of the microsecond makes the truncation
 * land on the saved one despite the double's rounding (about 0.25 us here).
 */
export function mtimeSeconds(m: string): number {
  const [s, ns = '0'] = m.split('.');
  const us = Math.floor(Number(ns.padEnd(9, '0')) / 1000);
  return Number(s) + (us + 0.5) / 1e6;
}

export function headerLine(h: ManifestHeader): string {
  const json = JSON.stringify({ ...h, files: [] });
  // `..."files":[]}` -> `..."files":[` (entries follow, one a line)
  return json.slice(0, -2) + '\n';
}

export function trailerLine(t: ManifestTrailer): string {
  return '],' + JSON.stringify(t).slice(1) + '\n';
}

/** Name `current` points to, or null when there is none or it is not a generation name. */
export function readCurrent(dir: string): string | null {
  let target: string;
  try {
    target = readlinkSync(join(dir, CURRENT));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EINVAL') {
      // a one-line file (SPEC allows either)
      try {
        target = readSmallFile(join(dir, CURRENT)).trim();
      } catch {
        return null;
      }
    } else return null;
  }
  target = target.replace(/\/+$/, '');
  return GEN_RE.test(target) ? target : null;
}

export function readSmallFile(path: string, max = 65536): string {
  const fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, max - n, null);
      if (r === 0 || n + r >= max) {
        n += r;
        break;
      }
      n += r;
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Reads a file line by line with bounded memory (synchronous). */
export class LineReader {
  private fd: number;
  private buf = Buffer.alloc(1 << 20);
  private start = 0;
  private end = 0;
  private eof = false;
  readonly size: number;

  constructor(path: string) {
    this.fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW);
    this.size = fstatSync(this.fd).size;
  }

  /** Next line without its newline; null at the end. A last line without newline is returned as is. */
  next(): string | null {
    for (;;) {
      const nl = this.buf.indexOf(10, this.start);
      if (nl >= 0 && nl < this.end) {
        const s = this.buf.toString('utf8', this.start, nl);
        this.start = nl + 1;
        return s;
      }
      if (this.eof) {
        if (this.start < this.end) {
          const s = this.buf.toString('utf8', this.start, this.end);
          this.start = this.end;
          return s;
        }
        return null;
      }
      if (this.start > 0) {
        this.buf.copy(this.buf, 0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      if (this.end === this.buf.length) {
        const bigger = Buffer.alloc(this.buf.length * 2);
        this.buf.copy(bigger, 0, 0, this.end);
        this.buf = bigger;
      }
      const r = readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
      if (r === 0) this.eof = true;
      this.end += r;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

export type ManifestCheck =
  | { ok: true; header: ManifestHeader; trailer: ManifestTrailer }
  | { ok: false; error: string };

function parseTrailer(line: string): ManifestTrailer | null {
  if (!line.startsWith('],')) return null;
  try {
    const t = JSON.parse('{' + line.slice(2)) as ManifestTrailer;
    if (t.complete !== true || !Number.isInteger(t.messages) || !Number.isInteger(t.fileCount)) return null;
    return t;
  } catch {
    return null;
  }
}

export function parseHeaderLine(line: string): ManifestHeader | null {
  try {
    const h = JSON.parse(line + ']}') as ManifestHeader & { files: unknown };
    if (h.format !== MANIFEST_FORMAT || !Array.isArray(h.dirs)) return null;
    return h;
  } catch {
    return null;
  }
}

export function parseEntry(line: string): FileEntry | null {
  const s = line.endsWith(',') ? line.slice(0, -1) : line;
  try {
    const e = JSON.parse(s) as FileEntry;
    if (
      typeof e.id !== 'string' ||
      typeof e.path !== 'string' ||
      !Number.isInteger(e.size) ||
      typeof e.sha256 !== 'string' ||
      typeof e.mtime !== 'string'
    ) {
      return null;
    }
    return e;
  } catch {
    return null;
  }
}

/**
 * Streams a manifest: calls onEntry for every entry and checks that the header
 * and the trailer are there and that the counts agree. With onEntry omitted it
 * only validates.
 */
export function walkManifest(path: string, onEntry?: (e: FileEntry) => void): ManifestCheck {
  let r: LineReader;
  try {
    r = new LineReader(path);
  } catch (e) {
    return { ok: false, error: `cannot open manifest: ${(e as Error).message}` };
  }
  try {
    const first = r.next();
    const header = first === null ? null : parseHeaderLine(first);
    if (!header) return { ok: false, error: 'manifest header missing or invalid' };
    let files = 0;
    let trailer: ManifestTrailer | null = null;
    for (let line = r.next(); line !== null; line = r.next()) {
      if (line.startsWith('],')) {
        trailer = parseTrailer(line);
        break;
      }
      const e = parseEntry(line);
      if (!e) return { ok: false, error: `manifest entry ${files + 1} invalid` };
      files++;
      onEntry?.(e);
    }
    if (!trailer) return { ok: false, error: 'manifest incomplete (no trailer)' };
    if (trailer.fileCount !== files) {
      return { ok: false, error: `manifest lists ${files} files, trailer says ${trailer.fileCount}` };
    }
    return { ok: true, header, trailer };
  } finally {
    r.close();
  }
}

/** Reads the trailer alone, from the end of the file (for progress totals before streaming). */
export function readTrailer(path: string): ManifestTrailer | null {
  const fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, 4096);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, size - n);
    const text = buf.toString('utf8').replace(/\n$/, '');
    const last = text.slice(text.lastIndexOf('\n') + 1);
    return parseTrailer(last);
  } finally {
    closeSync(fd);
  }
}
