// restore: puts the generation `current` names back into the spool, verified.
//
// Per message: files already in the spool with the manifest's content are
// left alone; the missing ones are copied from the backup under a temporary
// name in their final directory (`.sg-restore-<pid>-<n>`: never 18/25
// characters ending in -H, so Exim never counts one), verified against the
// manifest, given owner, mode and mtime, and only when every file of the
// message verified are they renamed into place, -H last (Exim's commit point).
// A kill at any moment leaves complete files only (and temporaries the next
// run removes); a rerun finishes the job. A completed run writes
// <gen>/restored, after which restoring that generation again does nothing
// unless forced.
import {
  closeSync,
  fsyncSync,
  lstatSync,
  chmodSync,
  chownSync,
  mkdirSync,
  renameSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  applyMeta,
  copyHashed,
  createExclusive,
  eximUsers,
  fsyncPath,
  hashFd,
  isRealDir,
  lstatOrNull,
  openRegular,
  readdirOrEmpty,
  type SpoolUser,
  TMPFS_MAGIC,
  takeLock,
  unlinkQuiet,
} from './fsutil.js';
import {
  type FileEntry,
  GEN_RE,
  MANIFEST,
  mtimeSeconds,
  RESTORED_MARK,
  readCurrent,
  readSmallFile,
  readTrailer,
  walkManifest,
} from './manifest.js';
import { Progress } from './progress.js';
import { safeRelPath, spoolDirs } from './spool-scan.js';

export const TEMP_PREFIX = '.sg-restore-';

export interface RestoreOptions {
  from: string;
  spool: string;
  force?: boolean;
  /** a generation other than `current` (gen-...) */
  generation?: string;
  quiet?: boolean;
}

export interface RestoreResult {
  ok: boolean;
  generation?: string;
  /** the generation had been restored before: nothing done */
  alreadyRestored?: string;
  messages: number;
  restored: number;
  /** already in the spool with the same content */
  present: number;
  /** in the spool with different content: kept as is */
  conflicts: string[];
  /** failed verification against the manifest: skipped */
  corrupt: string[];
  /** other failures (e.g. the spool filled up): skipped, generation not marked */
  errors: string[];
  files: number;
  bytes: number;
  seconds: number;
  marked: boolean;
  tempsRemoved: number;
  problems: string[];
  refusedBy?: SpoolUser[];
}

type FileState = { kind: 'same' } | { kind: 'missing' } | { kind: 'different'; why: string };

function stateOf(path: string, e: FileEntry): FileState {
  const st = lstatOrNull(path);
  if (!st) return { kind: 'missing' };
  if (!st.isFile()) return { kind: 'different', why: 'not a regular file' };
  if (st.size !== e.size) return { kind: 'different', why: `size ${st.size}, saved ${e.size}` };
  const { fd } = openRegular(path);
  try {
    const h = hashFd(fd);
    return h.sha256 === e.sha256 ? { kind: 'same' } : { kind: 'different', why: 'content differs' };
  } finally {
    closeSync(fd);
  }
}

class VerifyError extends Error {}

export function restore(o: RestoreOptions): RestoreResult {
  const t0 = Date.now();
  const res: RestoreResult = {
    ok: false,
    messages: 0,
    restored: 0,
    present: 0,
    conflicts: [],
    corrupt: [],
    errors: [],
    files: 0,
    bytes: 0,
    seconds: 0,
    marked: false,
    tempsRemoved: 0,
    problems: [],
  };
  const done = () => {
    res.seconds = (Date.now() - t0) / 1000;
    return res;
  };
  const gen = o.generation ?? readCurrent(o.from);
  if (!gen || !GEN_RE.test(gen)) {
    res.problems.push(
      o.generation
        ? `--generation ${o.generation}: expected gen-<yyyymmddThhmmssZ>`
        : `${o.from}: no current generation`,
    );
    return done();
  }
  res.generation = gen;
  const genDir = join(o.from, gen);
  if (!isRealDir(genDir)) {
    res.problems.push(`${genDir}: generation missing`);
    return done();
  }
  const mark = join(genDir, RESTORED_MARK);
  if (lstatOrNull(mark) && !o.force) {
    let when = '';
    try {
      when = (JSON.parse(readSmallFile(mark)) as { restored?: string }).restored ?? '';
    } catch {}
    res.alreadyRestored = when || 'yes';
    res.ok = true;
    return done();
  }
  if (!isRealDir(o.spool)) {
    res.problems.push(`spool ${o.spool} is not a directory (is the tmpfs mounted?)`);
    return done();
  }
  if (!o.force) {
    const users = eximUsers(o.spool);
    if (users.length > 0) {
      res.refusedBy = users;
      res.problems.push(
        ...users.map(
          (u) =>
            `refusing: ${u.name} (pid ${u.pid}) is using the spool (${u.what}); stop Exim or use --force`,
        ),
      );
      return done();
    }
  }
  const lock = takeLock(o.from);
  if ('heldBy' in lock) {
    res.problems.push(`another save or restore (pid ${lock.heldBy}) holds ${join(o.from, '.lock')}`);
    return done();
  }
  try {
    const manifest = join(genDir, MANIFEST);
    // the whole manifest is checked before anything is written: an incomplete one is never restored
    const check = walkManifest(manifest);
    if (!check.ok) {
      res.problems.push(`${gen}: ${check.error}; not restoring it`);
      return done();
    }
    const spool = o.spool;
    const onTmpfs = statfsSync(spool).type === TMPFS_MAGIC;

    // temporaries of runs that were killed
    for (const d of spoolDirs(spool)) {
      for (const name of readdirOrEmpty(join(spool, d.path))) {
        if (name.startsWith(TEMP_PREFIX)) {
          unlinkQuiet(join(spool, d.path, name));
          res.tempsRemoved++;
        }
      }
    }
    // directories as Exim expects them, with the saved owners and modes
    for (const d of check.header.dirs) {
      if (d.path !== '.' && !safeRelPath(d.path + '/x')) continue;
      const p = join(spool, d.path);
      if (d.path === '.') {
        const st = lstatSync(p);
        if (st.uid !== d.uid || st.gid !== d.gid) chownSync(p, d.uid, d.gid);
        if ((st.mode & 0o7777) !== d.mode) chmodSync(p, d.mode);
        continue;
      }
      if (!isRealDir(p)) {
        mkdirSync(p, { mode: 0o700 });
        chownSync(p, d.uid, d.gid);
        chmodSync(p, d.mode);
      }
    }
    const trailer = readTrailer(manifest);
    const progress = new Progress({
      verb: 'restore',
      totalMessages: trailer?.messages ?? 0,
      totalBytes: trailer?.bytes ?? 0,
      quiet: o.quiet,
    });
    let seq = 0;
    let abort: string | undefined;

    const restoreMessage = (files: FileEntry[]) => {
      const id = files[0].id;
      res.messages++;
      for (const f of files) {
        if (!safeRelPath(f.path)) {
          res.corrupt.push(`${id}: unsafe path ${JSON.stringify(f.path)} in manifest`);
          return;
        }
      }
      // -H last whatever the manifest's order
      files.sort((a, b) => Number(a.path.endsWith('-H')) - Number(b.path.endsWith('-H')));
      const head = files[files.length - 1];
      const states = files.map((f) => stateOf(join(spool, f.path), f));
      if (head.path.endsWith('-H') && states[states.length - 1].kind !== 'missing') {
        const diff = states.findIndex((s) => s.kind !== 'same');
        if (diff < 0) {
          res.present++;
          progress.tick(1, 0);
          return;
        }
        const s = states[diff];
        res.conflicts.push(
          `${id}: already in the spool with different content (${files[diff].path}: ${s.kind === 'different' ? s.why : 'missing'}); kept as it is`,
        );
        return;
      }
      const clash = states.findIndex((s) => s.kind === 'different');
      if (clash >= 0) {
        const s = states[clash] as { why: string };
        res.conflicts.push(
          `${id}: ${files[clash].path} already in the spool (${s.why}); message kept as it is`,
        );
        return;
      }
      const temps: { tmp: string; final: string }[] = [];
      let bytes = 0;
      try {
        for (let i = 0; i < files.length; i++) {
          if (states[i].kind === 'same') continue;
          const f = files[i];
          const final = join(spool, f.path);
          const dir = final.slice(0, final.lastIndexOf('/'));
          if (!isRealDir(dir)) {
            mkdirSync(dir, { mode: 0o750 });
          }
          const tmp = join(dir, `${TEMP_PREFIX}${process.pid}-${seq++}`);
          let src: ReturnType<typeof openRegular>;
          try {
            src = openRegular(join(genDir, f.path));
          } catch (e) {
            throw new VerifyError(
              `${f.path}: cannot read the saved copy (${(e as NodeJS.ErrnoException).code})`,
            );
          }
          let dfd: number | undefined;
          try {
            dfd = createExclusive(tmp);
            temps.push({ tmp, final });
            const c = copyHashed(src.fd, dfd);
            if (c.size !== f.size || c.sha256 !== f.sha256) {
              throw new VerifyError(
                `${f.path}: saved copy does not match the manifest (${c.size !== f.size ? `size ${c.size}, manifest ${f.size}` : 'sha256 differs'})`,
              );
            }
            applyMeta(dfd, { mode: f.mode, uid: f.uid, gid: f.gid, mtime: mtimeSeconds(f.mtime) });
            if (!onTmpfs) fsyncSync(dfd);
            bytes += c.size;
          } finally {
            closeSync(src.fd);
            if (dfd !== undefined) closeSync(dfd);
          }
        }
        for (const t of temps) renameSync(t.tmp, t.final);
        res.restored++;
        res.files += temps.length;
        res.bytes += bytes;
        progress.tick(1, bytes);
      } catch (e) {
        for (const t of temps) unlinkQuiet(t.tmp);
        if (e instanceof VerifyError) {
          res.corrupt.push(`${id}: ${e.message}; message skipped`);
        } else {
          const err = e as NodeJS.ErrnoException;
          res.errors.push(`${id}: ${err.message}; message skipped`);
          if (err.code === 'ENOSPC' || err.code === 'EDQUOT' || err.code === 'EROFS') abort = err.message;
        }
      }
    };

    let group: FileEntry[] = [];
    try {
      walkManifest(manifest, (e) => {
        if (abort) return;
        if (group.length > 0 && group[0].id !== e.id) {
          restoreMessage(group);
          group = [];
        }
        group.push(e);
      });
      if (group.length > 0 && !abort) restoreMessage(group);
    } finally {
      progress.finish();
    }
    if (abort) {
      res.problems.push(`stopped: ${abort}; generation not marked as restored, rerun once fixed`);
    }
    if (!onTmpfs) for (const d of spoolDirs(spool)) fsyncPath(join(spool, d.path));
    // verification failures are permanent (a rerun would fail the same way), so
    // they do not prevent the mark; failures of the spool side (full, I/O) do.
    if (res.errors.length === 0) {
      const tmp = join(genDir, '.restored.tmp');
      unlinkQuiet(tmp);
      const fd = createExclusive(tmp);
      try {
        const body = JSON.stringify({
          restored: new Date().toISOString(),
          spool,
          messages: res.messages,
          restored_messages: res.restored,
          present: res.present,
          conflicts: res.conflicts.length,
          corrupt: res.corrupt.length,
        });
        writeSync(fd, body + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, mark);
      fsyncPath(genDir);
      res.marked = true;
    }
    res.ok = res.conflicts.length === 0 && res.corrupt.length === 0 && res.errors.length === 0;
  } catch (e) {
    res.problems.push(`restore failed: ${(e as Error).message}`);
  } finally {
    lock.release();
  }
  return done();
}
