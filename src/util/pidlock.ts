// A lock file holding `<pid> <process start time>`, created with O_EXCL|O_NOFOLLOW.
// Shared by the agent (one agent per flag) and save/restore (one run per backup dir).
import { closeSync, constants, lstatSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

/** Start time of a live process, or null (gone, or a zombie nobody reaped: it holds nothing). */
export function processStartTime(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 22 (starttime), after the parenthesised comm which may hold spaces
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return null;
    return f[19] ?? null;
  } catch {
    return null;
  }
}

export interface PidLockOptions {
  mode: number;
  /** a lock holding this process's own pid counts as stale (a run in the same process that died) */
  ownPidIsStale: boolean;
}

/**
 * Takes the lock at `path`. A lock whose process is gone (kill -9), or whose pid
 * now belongs to another process (a different start time), is stale and taken
 * over; a live holder is returned as `heldBy`. Throws when the lock cannot be
 * created, or when something other than a regular file sits at `path`.
 */
export function tryPidLock(path: string, o: PidLockOptions): { release(): void } | { heldBy: number } {
  const me = `${process.pid} ${processStartTime(process.pid) ?? 0}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        o.mode,
      );
      writeSync(fd, me);
      closeSync(fd);
      return {
        release() {
          try {
            if (readFileSync(path, 'utf8') === me) unlinkSync(path);
          } catch {}
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder: string;
    try {
      if (!lstatSync(path).isFile()) throw new Error(`lock ${path} is not a regular file; remove it`);
      holder = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw e;
    }
    const [pidS, start] = holder.trim().split(' ');
    const pid = Number(pidS);
    const own = pid === process.pid && o.ownPidIsStale;
    if (Number.isInteger(pid) && pid > 0 && !own && processStartTime(pid) === (start ?? null))
      return { heldBy: pid };
    try {
      unlinkSync(path); // stale, or an unreadable half-written lock
    } catch {}
  }
  throw new Error(`cannot take lock ${path}`);
}
