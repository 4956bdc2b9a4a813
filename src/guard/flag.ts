// The flag file actuator: defer active <=> the flag exists. Written atomically
// (temporary file in the same directory, then rename), never through a symlink,
// and only inside the flag's own directory. Also the state file (overrides) and
// the lock that keeps two agents from driving one flag.
import {
  chmodSync,
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DeferReason } from '../config.js';
import { DEFER_REASONS } from '../config.js';
import { tryPidLock } from '../util/pidlock.js';
import type { Override } from './policy.js';

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export class FlagError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface FlagContent {
  reasons: DeferReason[];
  since: number | null;
  until: number | null;
}

export function formatFlag(c: FlagContent): string {
  let s = `reasons=${c.reasons.join(',')} since=${Math.floor(c.since ?? Date.now() / 1000)}`;
  if (c.until !== null) s += ` until=${c.until}`;
  return s + '\n';
}

export function parseFlag(text: string): FlagContent {
  const out: FlagContent = { reasons: [], since: null, until: null };
  for (const part of text.trim().split(/\s+/)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq);
    const v = part.slice(eq + 1);
    if (k === 'reasons')
      out.reasons = v.split(',').filter((r): r is DeferReason => (DEFER_REASONS as string[]).includes(r));
    else if (k === 'since' && /^\d+$/.test(v)) out.since = Number(v);
    else if (k === 'until' && /^\d+$/.test(v)) out.until = Number(v);
  }
  return out;
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? 'EIO';
}

/** Makes sure `dir` is a real directory (creating it 0755 when missing), never a symlink. */
export function ensureDir(dir: string): void {
  try {
    const st = lstatSync(dir);
    if (st.isSymbolicLink())
      throw new FlagError(`${dir} is a symlink; refusing to write through it`, 'ELOOP');
    if (!st.isDirectory()) throw new FlagError(`${dir} is not a directory`, 'ENOTDIR');
  } catch (e) {
    if (e instanceof FlagError) throw e;
    if (errCode(e) !== 'ENOENT') throw new FlagError(`${dir}: ${(e as Error).message}`, errCode(e));
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      chmodSync(dir, 0o755); // Exim (another user) must be able to see the flag, whatever the umask
    } catch (e2) {
      throw new FlagError(`cannot create ${dir}: ${(e2 as Error).message}`, errCode(e2));
    }
  }
}

/** Writes `data` to `path` atomically without following links. */
export function atomicWrite(path: string, data: string, mode = 0o644): void {
  const dir = dirname(path);
  ensureDir(dir);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  try {
    unlinkSync(tmp); // a leftover of a killed predecessor with our pid
  } catch {}
  let fd: number;
  try {
    fd = openSync(tmp, WRITE_FLAGS, mode);
  } catch (e) {
    throw new FlagError(`cannot create ${tmp}: ${(e as Error).message}`, errCode(e));
  }
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {}
    throw new FlagError(`cannot write ${tmp}: ${(e as Error).message}`, errCode(e));
  }
  closeSync(fd);
  try {
    renameSync(tmp, path); // replaces a planted symlink itself, never its target
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw new FlagError(`cannot rename onto ${path}: ${(e as Error).message}`, errCode(e));
  }
}

export class FlagFile {
  constructor(readonly path: string) {}

  get statePath(): string {
    return join(dirname(this.path), `.${basename(this.path)}.state.json`);
  }
  get lockPath(): string {
    return join(dirname(this.path), `.${basename(this.path)}.lock`);
  }

  /** The flag as it is on disk: null when absent. A symlink planted there counts as present (Exim would see it). */
  read(): FlagContent | null {
    let st: import('node:fs').Stats;
    try {
      st = lstatSync(this.path);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return null;
      throw new FlagError(`${this.path}: ${(e as Error).message}`, errCode(e));
    }
    if (!st.isFile()) return { reasons: [], since: null, until: null };
    try {
      const fd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const buf = Buffer.alloc(4096);
        const n = readSync(fd, buf, 0, buf.length, 0);
        return parseFlag(buf.subarray(0, n).toString('utf8'));
      } finally {
        closeSync(fd);
      }
    } catch {
      return { reasons: [], since: null, until: null };
    }
  }

  /** Whether anything is at the flag path (one lstat). */
  exists(): boolean {
    try {
      lstatSync(this.path);
      return true;
    } catch (e) {
      if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return false;
      throw new FlagError(`${this.path}: ${(e as Error).message}`, errCode(e));
    }
  }

  write(c: FlagContent): void {
    atomicWrite(this.path, formatFlag(c));
  }

  remove(): void {
    try {
      const st = lstatSync(this.path);
      if (st.isDirectory()) throw new FlagError(`${this.path} is a directory`, 'EISDIR');
      unlinkSync(this.path);
    } catch (e) {
      if (e instanceof FlagError) throw e;
      if (errCode(e) === 'ENOENT') return;
      throw new FlagError(`cannot remove ${this.path}: ${(e as Error).message}`, errCode(e));
    }
  }

  readOverride(): Override | null {
    try {
      const st = lstatSync(this.statePath);
      if (!st.isFile()) return null;
      const j = JSON.parse(readFileSync(this.statePath, 'utf8'));
      const o = j?.override;
      if (!o || (o.mode !== 'on' && o.mode !== 'off')) return null;
      const until = typeof o.until === 'number' ? o.until : null;
      if (o.mode === 'off' && until === null) return null;
      return { mode: o.mode, until, setAt: typeof o.setAt === 'number' ? o.setAt : 0 };
    } catch {
      return null;
    }
  }

  writeOverride(o: Override | null): void {
    atomicWrite(this.statePath, JSON.stringify({ override: o }) + '\n', 0o600);
  }
}

// ---- lock ---------------------------------------------------------------

export class LockError extends Error {}

/**
 * Takes the lock beside the flag: a file holding `<pid> <process start time>`,
 * created with O_EXCL. A lock whose process is gone (or is another process that
 * reused the pid) is stale and taken over; a live holder makes this throw.
 */
export function acquireLock(path: string): () => void {
  ensureDir(dirname(path));
  let r: ReturnType<typeof tryPidLock>;
  try {
    r = tryPidLock(path, { mode: 0o644, ownPidIsStale: false });
  } catch (e) {
    throw new LockError(
      (e as Error).message.startsWith('lock ')
        ? (e as Error).message
        : `cannot create lock ${path}: ${(e as Error).message}`,
    );
  }
  if ('heldBy' in r)
    throw new LockError(`flag is driven by another spool-guard (pid ${r.heldBy}, lock ${path})`);
  return () => r.release();
}
