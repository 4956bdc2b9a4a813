// File-system helpers for save and restore: hashed copies that never follow
// symlinks, a crash-tolerant lock, directory fsync, process scanning.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  futimesSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  unlinkSync,
  writeSync,
  constants as C,
} from 'node:fs';
import { join } from 'node:path';
import { tryPidLock } from '../util/pidlock.js';

export const TMPFS_MAGIC = 0x01021994;

const BUF = Buffer.allocUnsafe(1 << 20);

export interface Copied {
  size: number;
  sha256: string;
}

export interface SourceMeta {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
}

/** Opens a file for reading without following a symlink at its last component; refuses non-regular files. */
export function openRegular(path: string, extraFlags = 0): { fd: number; meta: SourceMeta } {
  const fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | extraFlags);
  try {
    const st = fstatSync(fd, { bigint: true });
    if ((Number(st.mode) & C.S_IFMT) !== C.S_IFREG) {
      const e = new Error(`${path}: not a regular file`) as NodeJS.ErrnoException;
      e.code = 'ENOTREG';
      throw e;
    }
    return {
      fd,
      meta: {
        size: Number(st.size),
        mode: Number(st.mode) & 0o7777,
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.mtimeNs,
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Creates `path` exclusively (never through a symlink) with mode 0600. */
export function createExclusive(path: string): number {
  return openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
}

/** Copies everything from `src` to `dst` (file descriptors), hashing on the way. */
export function copyHashed(src: number, dst: number): Copied {
  const h = createHash('sha256');
  let size = 0;
  for (;;) {
    const n = readSync(src, BUF, 0, BUF.length, null);
    if (n === 0) break;
    const chunk = BUF.subarray(0, n);
    h.update(chunk);
    let off = 0;
    while (off < n) off += writeSync(dst, chunk, off, n - off);
    size += n;
  }
  return { size, sha256: h.digest('hex') };
}

/** sha256 of an open file from its start. */
export function hashFd(fd: number): Copied {
  const h = createHash('sha256');
  let size = 0;
  let pos = 0;
  for (;;) {
    const n = readSync(fd, BUF, 0, BUF.length, pos);
    if (n === 0) break;
    h.update(BUF.subarray(0, n));
    size += n;
    pos += n;
  }
  return { size, sha256: h.digest('hex') };
}

export function applyMeta(fd: number, m: { mode: number; uid: number; gid: number; mtime: number }): void {
  fchownSync(fd, m.uid, m.gid);
  fchmodSync(fd, m.mode);
  futimesSync(fd, m.mtime, m.mtime);
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, C.O_RDONLY | C.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** syncfs(2) on the file system holding `path` (coreutils `sync -f`; Node has no syncfs). */
export function syncFilesystem(path: string): void {
  execFileSync('sync', ['-f', path], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** lstat that answers null for a missing path. */
export function lstatOrNull(path: string) {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export function readdirOrEmpty(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw e;
  }
}

/** Real directory (not a symlink) or absent; throws when something else is there. */
export function isRealDir(path: string): boolean {
  const st = lstatOrNull(path);
  if (!st) return false;
  if (st.isSymbolicLink()) throw new Error(`${path} is a symlink; refusing to use it`);
  if (!st.isDirectory()) throw new Error(`${path} exists and is not a directory`);
  return true;
}

// ---------------------------------------------------------------- lock

export interface Lock {
  release(): void;
}

/**
 * Takes `<dir>/.lock` (O_EXCL, holding pid and start time). A lock left by a
 * process that no longer exists (kill -9) is taken over. Returns null with
 * the holder's pid when a live process holds it.
 */
export function takeLock(dir: string): Lock | { heldBy: number } {
  return tryPidLock(join(dir, '.lock'), { mode: 0o600, ownPidIsStale: true });
}

// ---------------------------------------------------------------- processes

export interface SpoolUser {
  pid: number;
  name: string;
  what: string;
}

/**
 * Exim processes whose working directory or an open file lies inside `spool`
 * (the daemon and queue runners chdir there). Scans /proc/<pid>/cwd and fd/.
 */
export function eximUsers(spool: string): SpoolUser[] {
  let root: string;
  try {
    root = realpathSync(spool);
  } catch {
    root = spool;
  }
  const inside = (p: string) => p === root || p.startsWith(root.endsWith('/') ? root : root + '/');
  const out: SpoolUser[] = [];
  for (const ent of readdirOrEmpty('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const pid = Number(ent);
    if (pid === process.pid) continue;
    let name: string;
    try {
      name = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (!/exim/i.test(name)) continue;
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (inside(cwd)) {
        out.push({ pid, name, what: `working directory ${cwd}` });
        continue;
      }
    } catch {}
    for (const fd of readdirOrEmpty(`/proc/${pid}/fd`)) {
      try {
        const t = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (inside(t)) {
          out.push({ pid, name, what: `open file ${t}` });
          break;
        }
      } catch {}
    }
  }
  return out;
}
