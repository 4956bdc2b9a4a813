// save: copies the spool's messages into a new, verified, durable generation.
//
// Crash safety: the generation is built in <to>/.partial-<gen>/ and only renamed
// to gen-<ts> once every file, the manifest and the directories are on disk;
// then <to>/current is replaced by rename. A kill at any moment leaves either
// the old `current` (and a partial directory the next run removes) or the new
// one. The spool is only read (O_NOATIME, O_NOFOLLOW).
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  applyMeta,
  copyHashed,
  createExclusive,
  eximUsers,
  fsyncPath,
  isRealDir,
  openRegular,
  type SpoolUser,
  syncFilesystem,
  takeLock,
  unlinkQuiet,
} from './fsutil.js';
import {
  CURRENT,
  type FileEntry,
  GEN_RE,
  genName,
  genTime,
  headerLine,
  MANIFEST,
  MANIFEST_FORMAT,
  mtimeSeconds,
  mtimeString,
  PARTIAL_PREFIX,
  readCurrent,
  trailerLine,
} from './manifest.js';
import { Progress } from './progress.js';
import {
  countQueued,
  type Ignored,
  inputDirMessages,
  msglogCandidates,
  O_NOATIME,
  spoolDirs,
} from './spool-scan.js';

export type SyncMode = 'syncfs' | 'fsync';

export interface SaveOptions {
  spool: string;
  to: string;
  force?: boolean;
  /** older generations kept besides the new one (default 1: the previous) */
  keep?: number;
  /** syncfs: write everything, one syncfs, fsync the directories (default, measured faster); fsync: per file */
  sync?: SyncMode;
  quiet?: boolean;
  now?: () => number;
}

export interface SaveResult {
  ok: boolean;
  generation?: string;
  messages: number;
  files: number;
  bytes: number;
  seconds: number;
  /** not messages, reported and not copied (hdr.*, -D without -H, ...) */
  ignored: Ignored[];
  /** -H without -D: copied as they are */
  warnings: string[];
  /** messages that could not be saved, or why the save failed */
  problems: string[];
  retired: string[];
  refusedBy?: SpoolUser[];
}

const RETIRED_PREFIX = '.retired-';

class Abort extends Error {}

export function save(o: SaveOptions): SaveResult {
  const t0 = Date.now();
  const now = o.now ?? Date.now;
  const res: SaveResult = {
    ok: false,
    messages: 0,
    files: 0,
    bytes: 0,
    seconds: 0,
    ignored: [],
    warnings: [],
    problems: [],
    retired: [],
  };
  const done = () => {
    res.seconds = (Date.now() - t0) / 1000;
    return res;
  };
  const spool = o.spool;
  if (!isRealDir(spool)) {
    res.problems.push(`spool ${spool} is not a directory`);
    return done();
  }
  if (!o.force) {
    const users = eximUsers(spool);
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
  mkdirSync(o.to, { recursive: true, mode: 0o700 });
  if (!isRealDir(o.to)) throw new Error(`${o.to} is not a directory`);
  const lock = takeLock(o.to);
  if ('heldBy' in lock) {
    res.problems.push(`another save or restore (pid ${lock.heldBy}) holds ${join(o.to, '.lock')}`);
    return done();
  }
  let partial: string | undefined;
  try {
    // leftovers of runs that were killed
    for (const name of readdirSync(o.to)) {
      if (name.startsWith(PARTIAL_PREFIX) || name.startsWith(RETIRED_PREFIX)) {
        rmSync(join(o.to, name), { recursive: true, force: true });
      }
      if (name === '.current.tmp') unlinkQuiet(join(o.to, name));
    }
    // gen names are second-resolution: never reuse or go back from an existing one
    let t = Math.floor(now() / 1000) * 1000;
    for (const name of readdirSync(o.to)) {
      if (GEN_RE.test(name)) t = Math.max(t, genTime(name) + 1000);
    }
    const gen = genName(t);
    partial = join(o.to, PARTIAL_PREFIX + gen);
    mkdirSync(partial, { mode: 0o700 });

    const dirs = spoolDirs(spool);
    const perFile = o.sync === 'fsync';
    for (const d of dirs) if (d.path !== '.') mkdirSync(join(partial, d.path), { mode: 0o700 });

    const mfd = createExclusive(join(partial, MANIFEST));
    let pending = headerLine({
      format: MANIFEST_FORMAT,
      created: new Date(t).toISOString(),
      spool,
      host: hostname(),
      dirs,
    });
    let first = true;
    const flush = () => {
      const b = Buffer.from(pending);
      let off = 0;
      while (off < b.length) off += writeSync(mfd, b, off);
      pending = '';
    };
    const progress = new Progress({
      verb: 'save',
      totalMessages: countQueued(spool, dirs),
      totalBytes: 0,
      quiet: o.quiet,
    });
    try {
      for (const dir of dirs) {
        if (dir.path !== 'input' && !dir.path.startsWith('input/')) continue;
        for (const m of inputDirMessages(spool, dir.path, res.ignored)) {
          const entries: FileEntry[] = [];
          let vanished = false;
          // the message log (if any) first, then -J, -D, and -H last
          const candidates = msglogCandidates(m.id, dir.path);
          for (const rel0 of [null, ...m.files]) {
            let src: ReturnType<typeof openRegular> | undefined;
            let rel = rel0 ?? '';
            try {
              if (rel0 === null) {
                for (const c of candidates) {
                  try {
                    src = openRegular(join(spool, c), O_NOATIME);
                    rel = c;
                    break;
                  } catch (e) {
                    const code = (e as NodeJS.ErrnoException).code;
                    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
                  }
                }
                if (!src) continue;
              } else src = openRegular(join(spool, rel), O_NOATIME);
            } catch (e) {
              const code = (e as NodeJS.ErrnoException).code;
              if (code === 'ENOENT') {
                vanished = true;
                break;
              }
              throw new Abort(`cannot read ${rel}: ${(e as Error).message}`);
            }
            let dfd: number | undefined;
            try {
              dfd = createExclusive(join(partial, rel));
              const c = copyHashed(src.fd, dfd);
              const mtime = mtimeString(src.meta.mtimeNs);
              applyMeta(dfd, { ...src.meta, mtime: mtimeSeconds(mtime) });
              if (perFile) fsyncSync(dfd);
              entries.push({
                id: m.id,
                path: rel,
                size: c.size,
                mode: src.meta.mode,
                uid: src.meta.uid,
                gid: src.meta.gid,
                mtime,
                sha256: c.sha256,
              });
            } catch (e) {
              throw new Abort(`cannot copy ${rel}: ${(e as Error).message}`);
            } finally {
              closeSync(src.fd);
              if (dfd !== undefined) closeSync(dfd);
            }
          }
          if (vanished) {
            // only possible with --force while Exim runs: the message was delivered meanwhile
            for (const e of entries) unlinkQuiet(join(partial, e.path));
            res.warnings.push(`${m.id}: vanished from the spool while being saved (delivered?)`);
            continue;
          }
          if (m.noData) res.warnings.push(`${m.id}: -H without -D, saved as it is`);
          let bytes = 0;
          for (const e of entries) {
            pending += (first ? '' : ',\n') + JSON.stringify(e);
            first = false;
            bytes += e.size;
          }
          if (pending.length > 1 << 16) flush();
          res.messages++;
          res.files += entries.length;
          res.bytes += bytes;
          progress.tick(1, bytes);
        }
      }
      pending +=
        (first ? '' : '\n') +
        trailerLine({
          complete: true,
          messages: res.messages,
          fileCount: res.files,
          bytes: res.bytes,
        });
      flush();
      fsyncSync(mfd);
    } catch (e) {
      throw e instanceof Abort ? e : new Abort(`cannot write the manifest: ${(e as Error).message}`);
    } finally {
      closeSync(mfd);
      progress.finish();
    }

    // durable before published
    try {
      if (!perFile) syncFilesystem(partial);
      for (const d of [...dirs].reverse()) fsyncPath(join(partial, d.path));
    } catch (e) {
      throw new Abort(`cannot sync the generation to disk: ${(e as Error).message}`);
    }
    const final = join(o.to, gen);
    renameSync(partial, final);
    partial = undefined;
    fsyncPath(o.to);
    const tmp = join(o.to, '.current.tmp');
    unlinkQuiet(tmp);
    symlinkSync(gen, tmp);
    renameSync(tmp, join(o.to, CURRENT));
    fsyncPath(o.to);
    res.generation = gen;

    // retire: keep `current` and the `keep` newest others
    const keep = o.keep ?? 1;
    const others = readdirSync(o.to)
      .filter((n) => GEN_RE.test(n) && n !== gen)
      .sort()
      .reverse();
    for (const name of others.slice(keep)) {
      if (name === readCurrent(o.to)) continue;
      const dead = join(o.to, RETIRED_PREFIX + name);
      renameSync(join(o.to, name), dead);
      rmSync(dead, { recursive: true, force: true });
      res.retired.push(name);
    }
    if (res.retired.length > 0) fsyncPath(o.to);
    res.ok = true;
  } catch (e) {
    res.problems.push(e instanceof Abort ? e.message : `save failed: ${(e as Error).message}`);
    if (partial) {
      // an unpublished generation is never restored; remove it to free the space
      try {
        rmSync(partial, { recursive: true, force: true });
      } catch {}
    }
  } finally {
    lock.release();
  }
  return done();
}
