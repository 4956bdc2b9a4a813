// The Exim spool source: a first full scan, then incremental updates from one
// inotify watch per directory (input/ and each split directory, never one per
// file), coalesced into batches; a full rescan on schedule reconciles the
// incremental state and measures drift. Scans run in a worker thread.
import { type FSWatcher, lstatSync, readdirSync, realpathSync, type Stats, watch } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import { classifySpoolName } from './exim-id.js';
import { type EntryPatch, QueueState, STRAY_KINDS, type StrayKind } from './queue-state.js';
import { readHeaderSync } from './read-header.js';
import type { DetailChunk, MessageChunk } from './scan.js';
import { F_D, F_H, F_H_ODD, F_J, isSplitDirName, T_DIR, T_FILE } from './scan.js';
import type { FromWorker, ToWorker } from './scan-worker.js';
import type { Observation, SourceStats, SpoolSource } from './source.js';
import { type FsFigures, readStatfs } from './statfs.js';

const here = fileURLToPath(import.meta.url);
const WORKER = join(here, '..', `scan-worker${extname(here)}`);
const VERIFY_DELAY_MS = 300;

type ScanKind = 'initial' | 'rescan';
interface ScanRun {
  id: number;
  kind: ScanKind;
  started: number;
  touched: Set<string>;
  /** names to re-check when the scan ends (differences between the listing and the state) */
  suspects: Set<string>;
  resolve: () => void;
  workers: Worker[];
  pendingListed: number;
  pendingDone: number;
  headersRead: number;
  listMs: number;
  names: number;
  dirs: number;
  detailMs: number;
}

/** Under a storm of events, the shortest time between two batches. */
const BATCH_MS = 5;
/** Workers per full scan. The scanner can split the directories among several; on 2 cores one
 * worker beside the main thread measured faster to ready (bench/RESULTS.md): more contend with it. */
const SCAN_PARTS = 1;
/**
 * The first scan's second pass (a header read and two stats per message) runs after the agent
 * listens, so it no longer delays readiness: there, a second worker takes half the directories
 * (100k messages: bytes and frozen complete about 0.7 s sooner, bench/RESULTS.md).
 */
const INITIAL_DETAIL_SPLIT = true;
/** CPU niceness of the scan threads: the main thread (scrapes, reactions) goes first. */
const SCAN_NICE = 10;

export interface EximSpoolOptions {
  name: string;
  path: string;
  log: Logger;
  /** the first scan's second pass (sizes, headers) starts when this resolves (the agent: once listening) */
  detailsGate?: Promise<void>;
}

/**
 * One full garbage collection after the first scan: the scan's chunks (hundreds of
 * thousands of short-lived strings) are garbage by then, and V8 would otherwise keep
 * the heap it grew for them (RSS at 100k messages: bench/RESULTS.md).
 */
let gcFn: (() => void) | null | undefined;
function compactAfterBulkLoad(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  setTimeout(() => gcFn?.(), 50).unref();
}

/** lstat without an exception for a missing name (exceptions cost more than the system call). */
function lstatQuiet(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR, EACCES: as good as absent for the queue
  }
}

export class EximSpool implements SpoolSource {
  readonly name: string;
  readonly path: string;
  onChange: (() => void) | null = null;
  readonly stats: SourceStats = {
    events: 0,
    batches: 0,
    scans: 0,
    rescans: 0,
    corrections: 0,
    lastDrift: 0,
    lastListMs: 0,
    lastDetailMs: 0,
    lastRescanSeconds: 0,
    scanErrors: 0,
    reinits: 0,
  };
  private log: Logger;
  private state = new QueueState();
  private fs: FsFigures | null = null;
  private error: string | null = 'not started';
  private listed = false;
  private complete = false;
  private watchers = new Map<string, FSWatcher>();
  private inputId: string | null = null; // dev:ino of input/
  private pending = new Map<string, Set<string>>();
  private flushScheduled = false;
  private lastFlush = 0;
  private scanSeq = 0;
  private scan: ScanRun | null = null;
  private stopped = false;
  private realRoot: string | null = null;
  private lastErrorLogged: string | null = null;
  private lastInputDev: number | null = null;
  private rootWatcher: FSWatcher | null = null;

  constructor(o: EximSpoolOptions) {
    this.name = o.name;
    this.path = o.path;
    this.input = join(o.path, 'input');
    this.log = o.log.child({ spool: o.name });
    this.detailsGate = o.detailsGate ?? Promise.resolve();
  }

  private detailsGate: Promise<void>;

  /** `<spool>/input`, normalized once: names below it are joined by concatenation (one per event) */
  private readonly input: string;

  start(): void {
    this.stopped = false;
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.closeWatchers();
    this.closeRootWatcher();
    const s = this.scan;
    this.scan = null;
    if (s) {
      await Promise.all(s.workers.map((w) => w.terminate()));
      s.resolve();
    }
  }

  observe(): Observation {
    const strays = {} as Record<StrayKind, number>;
    for (const k of STRAY_KINDS) strays[k] = this.state.strayCount(k);
    const up = this.error === null && this.fs !== null && this.listed;
    return {
      up,
      error: this.error,
      fs: this.fs,
      listed: this.listed,
      complete: this.complete,
      queue: this.listed && this.error === null ? { ...this.state.t, oldest: this.state.oldest() } : null,
      strays,
      atMs: performance.now(),
    };
  }

  /** The message entries (for status and tests); do not mutate. */
  get queue(): QueueState {
    return this.state;
  }

  private setError(err: string | null): void {
    if (err !== null && err !== this.lastErrorLogged) {
      this.log.error('spool cannot be observed', { path: this.path, err });
      this.stats.scanErrors++;
    } else if (err === null && this.lastErrorLogged !== null) {
      this.log.info('spool observed again', { path: this.path });
    }
    this.lastErrorLogged = err;
    this.error = err;
  }

  private readFs(): boolean {
    try {
      this.fs = readStatfs(this.path);
      return true;
    } catch (e) {
      this.fs = null;
      this.setError(`statfs: ${(e as NodeJS.ErrnoException).code ?? e}`);
      return false;
    }
  }

  /**
   * The identity of input/ now; `empty` when the spool directory exists without
   * input/ (Exim creates it with the first message: a freshly mounted spool);
   * or an error string.
   */
  private probeInput(): { id: string } | { empty: true } | { err: string } {
    let rootDev: number;
    try {
      const root = lstatSync(this.path);
      if (root.isSymbolicLink()) {
        // a configured path that is a link is resolved once at start; one that becomes a link later is refused
        const real = realpathSync(this.path);
        if (this.realRoot === null) this.realRoot = real;
        else if (real !== this.realRoot) return { err: `spool path became a symlink to ${real}` };
        rootDev = lstatSync(real).dev;
      } else if (!root.isDirectory()) return { err: 'spool path is not a directory' };
      else {
        if (this.realRoot === null) this.realRoot = this.path;
        rootDev = root.dev;
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { err: code === 'ENOENT' ? 'spool directory missing' : `spool directory: ${code ?? e}` };
    }
    try {
      const st = lstatSync(this.input);
      if (st.isSymbolicLink()) return { err: 'input/ is a symlink (not followed)' };
      if (!st.isDirectory()) return { err: 'input/ is not a directory' };
      this.lastInputDev = rootDev;
      return { id: `${st.dev}:${st.ino}` };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return { err: `input/: ${code ?? e}` };
      if (this.lastInputDev !== null && this.lastInputDev !== rootDev) {
        return { err: 'input/ missing and the spool filesystem changed (unmounted?)' };
      }
      return { empty: true };
    }
  }

  tick(): void {
    if (this.stopped) return;
    const p = this.probeInput();
    if ('err' in p) {
      if (this.inputId !== null || this.listed || this.error === null || this.error === 'not started')
        this.reset();
      this.readFs();
      this.setError(p.err);
      return;
    }
    if (!this.readFs()) {
      this.reset();
      return;
    }
    if ('empty' in p) {
      if (this.rootWatcher) return;
      // an empty queue, exactly known; watch the spool directory for input/ to appear
      this.reset();
      this.setError(null);
      this.listed = true;
      this.complete = true;
      try {
        this.rootWatcher = watch(this.path, { persistent: false }, (_ev, f) => {
          if (f === null || f.toString() === 'input') this.tick();
        });
        this.rootWatcher.on('error', () => this.closeRootWatcher());
      } catch {}
      this.onChange?.();
      return;
    }
    if (p.id !== this.inputId) {
      if (this.inputId !== null) {
        this.log.warn('input/ was replaced (remount or recreated); starting over', { path: this.path });
        this.stats.reinits++;
      }
      this.reset();
      this.inputId = p.id;
      this.begin();
      return;
    }
    if (this.error !== null && !this.scan) this.begin();
  }

  private closeRootWatcher(): void {
    this.rootWatcher?.close();
    this.rootWatcher = null;
  }

  private reset(): void {
    this.closeWatchers();
    this.closeRootWatcher();
    this.state.clear();
    this.listed = false;
    this.complete = false;
    this.inputId = null;
    if (this.scan) this.abortScan(this.scan);
    this.pending.clear();
  }

  private closeWatchers(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watches first (so no change is missed), then the first full scan. */
  private begin(): void {
    if (!this.watchDir('')) return;
    this.setError(null);
    void this.runScan('initial');
  }

  private watchDir(sub: string): boolean {
    if (this.watchers.has(sub)) return true;
    const dir = sub ? join(this.input, sub) : this.input;
    try {
      const w = watch(dir, { persistent: false }, (_ev, filename) => {
        if (filename === null) {
          void this.rescan();
          return;
        }
        this.stats.events++;
        let set = this.pending.get(sub);
        if (!set) {
          set = new Set();
          this.pending.set(sub, set);
        }
        set.add(filename.toString());
        if (!this.flushScheduled) {
          this.flushScheduled = true;
          // at once when quiet; under a storm of events, batches at most every 5 ms
          if (performance.now() - this.lastFlush < BATCH_MS) setTimeout(() => this.flush(), BATCH_MS);
          else setImmediate(() => this.flush());
        }
      });
      w.on('error', (e) => {
        this.log.warn('directory watch failed', { dir, err: (e as NodeJS.ErrnoException).code ?? String(e) });
        w.close();
        this.watchers.delete(sub);
        if (sub === '')
          this.inputId = 'lost'; // next tick starts over
        else this.state.dropSub(sub);
      });
      this.watchers.set(sub, w);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (sub === '') {
        this.setError(`watch input/: ${code ?? e}`);
        this.inputId = null;
      } else this.log.warn('cannot watch split directory', { dir, err: code ?? String(e) });
      return false;
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    this.lastFlush = performance.now();
    if (this.stopped) return;
    const batch = this.pending;
    this.pending = new Map();
    for (const [sub, names] of batch) for (const n of names) this.processName(sub, n);
    this.stats.batches++;
    this.readFs();
    this.onChange?.();
  }

  /** Brings one name in sync with the disk (lstat, never following links). */
  private processName(sub: string, name: string): void {
    const key = `${sub}/${name}`;
    this.scan?.touched.add(key);
    const dir = sub ? `${this.input}/${sub}` : this.input;
    const path = `${dir}/${name}`;
    const c = classifySpoolName(name);
    if (!c) {
      const st = lstatQuiet(path);
      if (sub === '' && isSplitDirName(name)) {
        if (st?.isDirectory()) {
          this.state.setStray(key, null);
          if (!this.watchers.has(name)) {
            this.watchDir(name);
            try {
              for (const n of readdirSync(path)) this.processName(name, n);
            } catch {}
          }
          return;
        }
        if (this.watchers.has(name)) {
          this.watchers.get(name)!.close();
          this.watchers.delete(name);
          this.state.dropSub(name);
        }
      }
      if (!st) this.state.setStray(key, null);
      else this.state.setStray(key, st.isFile() && name.startsWith('hdr.') ? 'header_temp' : 'other');
      return;
    }
    if (c.kind === 'H') {
      const r = readHeaderSync(path);
      const ino = r.ino ?? 0;
      const mtime = r.mtimeMs ?? 0;
      if (r.ok)
        this.state.update(sub, c.id, {
          h: r.size,
          frozen: r.info.frozen,
          badHeader: false,
          sized: true,
          ino,
          mtime,
        });
      else if (r.missing)
        this.state.update(sub, c.id, { h: -1, frozen: false, badHeader: false, sized: true });
      else
        this.state.update(sub, c.id, {
          h: r.size ?? 0,
          frozen: false,
          badHeader: true,
          sized: true,
          ino,
          mtime,
        });
      return;
    }
    const size = lstatQuiet(path)?.size ?? -1;
    this.state.update(sub, c.id, c.kind === 'D' ? { d: size } : { j: size });
  }

  private spawnWorker(part: number, parts: number, nice: number): Worker {
    const workerData = { spool: this.path, part, parts, nice };
    const w = WORKER.endsWith('.ts')
      ? // from the TypeScript sources (tests), the worker registers the same loader first
        new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(WORKER).href)}); });`,
          { eval: true, workerData },
        )
      : new Worker(WORKER, { workerData });
    w.unref();
    return w;
  }

  rescan(): Promise<void> {
    if (this.stopped || !this.listed || this.scan) return Promise.resolve();
    return this.runScan('rescan');
  }

  /** A full scan by SCAN_PARTS workers, each listing and sizing a share of the directories; they exit when done. */
  private runScan(kind: ScanKind): Promise<void> {
    return new Promise((resolve) => {
      const id = ++this.scanSeq;
      const s: ScanRun = {
        id,
        kind,
        started: performance.now(),
        touched: new Set(),
        suspects: new Set(),
        resolve,
        workers: [],
        pendingListed: SCAN_PARTS,
        pendingDone: SCAN_PARTS,
        headersRead: 0,
        listMs: 0,
        names: 0,
        dirs: 0,
        detailMs: 0,
      };
      this.scan = s;
      for (let part = 0; part < SCAN_PARTS; part++) {
        this.scanWorker(s, part).postMessage({
          type: 'scan',
          scanId: id,
          // the first scan's second pass waits for the go (detailsGate): readiness first
          details: kind !== 'initial',
          readHeaders: kind === 'initial',
        } satisfies ToWorker);
      }
    });
  }

  /** A worker of scan `s`, its messages and failure wired to it. */
  private scanWorker(s: ScanRun, part: number): Worker {
    // the first scan runs at full priority (readiness waits on it); rescans yield to the main thread
    const w = this.spawnWorker(part, SCAN_PARTS, s.kind === 'initial' ? 0 : SCAN_NICE);
    s.workers.push(w);
    w.on('message', (m: FromWorker) => this.onWorker(s, m));
    w.on('error', (e) => {
      this.log.error('scan worker failed', { err: String(e) });
      this.stats.scanErrors++;
      this.abortScan(s);
    });
    return w;
  }

  private abortScan(s: ScanRun): void {
    for (const w of s.workers) void w.terminate();
    s.workers = [];
    if (this.scan === s) this.scan = null;
    s.resolve();
  }

  private onWorker(s: ScanRun, m: FromWorker): void {
    if (m.scanId !== s.id || this.scan !== s || this.stopped) return;
    switch (m.type) {
      case 'failed':
        this.stats.scanErrors++;
        this.setError(`scan: ${m.code}`);
        this.abortScan(s);
        return;
      case 'list':
        this.applyList(s, m.chunk);
        return;
      case 'listed':
        s.listMs = Math.max(s.listMs, m.listMs);
        s.names += m.names;
        s.dirs += m.dirs;
        this.noteErrors(m.errors);
        if (--s.pendingListed > 0) return;
        this.stats.lastListMs = s.listMs;
        if (s.kind === 'initial') {
          this.listed = true;
          this.readFs();
          this.log.info('spool listed', {
            messages: this.state.t.messages,
            names: s.names,
            dirs: s.dirs,
            list_ms: s.listMs.toFixed(1),
          });
          this.onChange?.();
          void this.detailsGate.then(() => {
            if (this.scan !== s) return;
            for (const w of s.workers)
              w.postMessage({
                type: 'details',
                scanId: s.id,
                split: INITIAL_DETAIL_SPLIT,
              } satisfies ToWorker);
          });
        } else this.findVanished(s);
        return;
      case 'detail':
        this.applyDetail(s, m.chunk);
        return;
      case 'handoff': {
        // a second worker for the other half of pass 2 (done is counted for it before the first one's)
        s.pendingDone++;
        this.scanWorker(s, 0).postMessage({
          type: 'detailsOf',
          scanId: s.id,
          raw: m.raw,
          readHeaders: m.readHeaders,
        } satisfies ToWorker);
        return;
      }
      case 'done':
        s.detailMs = Math.max(s.detailMs, m.detailMs);
        s.headersRead += m.headersRead;
        this.noteErrors(m.errors);
        if (--s.pendingDone > 0) return;
        this.stats.lastDetailMs = s.detailMs;
        for (const w of s.workers) void w.terminate();
        s.workers = [];
        void this.finish(s, s.headersRead);
        return;
    }
  }

  private noteErrors(errors: string[]): void {
    if (!errors.length) return;
    this.stats.scanErrors += errors.length;
    this.log.warn('scan could not read some entries', { count: errors.length, first: errors[0] });
  }

  private applyList(s: ScanRun, c: MessageChunk): void {
    const { sub } = c;
    if (sub !== '' && !this.watchers.has(sub)) this.watchDir(sub);
    const touched = s.touched;
    const anyTouched = touched.size > 0;
    for (let i = 0; i < c.others.length; i++) {
      const name = c.others[i];
      const type = c.otherTypes[i];
      if (sub === '' && type === T_DIR && isSplitDirName(name)) continue;
      const key = `${sub}/${name}`;
      if (s.kind === 'initial' && !(anyTouched && touched.has(key))) {
        this.state.setStray(key, type === T_FILE && name.startsWith('hdr.') ? 'header_temp' : 'other');
      }
    }
    for (let i = 0; i < c.ids.length; i++) {
      const id = c.ids[i];
      const f = c.flags[i];
      if (s.kind === 'rescan') {
        // the state marks the message seen by this scan
        const have = this.state.presence(sub, id, s.id);
        const diff = have ^ (f & (F_H | F_D | F_J));
        if (diff) this.suspect(s, sub, id, diff);
        continue;
      }
      if (
        anyTouched &&
        (touched.has(`${sub}/${id}-H`) || touched.has(`${sub}/${id}-D`) || touched.has(`${sub}/${id}-J`))
      ) {
        // an event already brought this message in sync with the disk: per file, the newer view wins
        const patch: EntryPatch = {};
        if (f & F_H && !touched.has(`${sub}/${id}-H`)) Object.assign(patch, { h: 0, sized: false });
        if (f & F_D && !touched.has(`${sub}/${id}-D`)) patch.d = 0;
        if (f & F_J && !touched.has(`${sub}/${id}-J`)) patch.j = 0;
        if (Object.keys(patch).length) this.state.update(sub, id, patch);
        continue;
      }
      this.state.insertListed(
        sub,
        id,
        f & F_H ? (f & F_H_ODD ? 'odd' : 'file') : null,
        (f & F_D) !== 0,
        (f & F_J) !== 0,
        c.arrivals[i],
      );
    }
  }

  private suspect(s: ScanRun, sub: string, id: string, kinds: number): void {
    if (kinds & F_H) s.suspects.add(`${sub}/${id}-H`);
    if (kinds & F_D) s.suspects.add(`${sub}/${id}-D`);
    if (kinds & F_J) s.suspects.add(`${sub}/${id}-J`);
  }

  private applyDetail(s: ScanRun, c: DetailChunk): void {
    const { sub } = c;
    const touched = s.touched;
    for (let i = 0; i < c.names.length; i++) {
      const name = c.names[i];
      if (touched.size > 0 && touched.has(`${sub}/${name}`)) continue;
      const size = c.sizes[i];
      if (s.kind === 'rescan') {
        // the worker only sends -H/-D/-J names of well-formed ids
        // a -H renamed into place (freeze, thaw, delivery attempt) has a new inode: re-read it
        const same = this.state.same(
          sub,
          name.slice(0, -2),
          name[name.length - 1] as 'H' | 'D' | 'J',
          size,
          c.inos[i],
          c.mtimes[i],
        );
        // undefined: a presence difference, handled by the listing comparison
        if (same === false) s.suspects.add(`${sub}/${name}`);
        continue;
      }
      const key = `${sub}/${name}`;
      const cl = classifySpoolName(name)!;
      const fz = c.frozen[i];
      if (size < 0) {
        s.suspects.add(key);
        continue;
      }
      if (cl.kind === 'H')
        this.state.update(sub, cl.id, {
          h: size,
          frozen: fz === 1,
          badHeader: fz === 2,
          sized: true,
          ino: c.inos[i],
          mtime: c.mtimes[i],
        });
      else this.state.update(sub, cl.id, cl.kind === 'D' ? { d: size } : { j: size });
    }
  }

  /**
   * Rescan: messages the state holds that the listing did not see (one pass over the state's
   * columns, about a millisecond at 100k). A message created after its directory was listed
   * is a suspect too: finish() re-checks it.
   */
  private findVanished(s: ScanRun): void {
    for (const u of this.state.unseen(s.id)) this.suspect(s, u.sub, u.id, u.have);
  }

  private async finish(s: ScanRun, headersRead: number): Promise<void> {
    // Wait out events already queued for the suspects, then bring each in sync with the disk.
    await new Promise((r) => setTimeout(r, s.kind === 'rescan' ? VERIFY_DELAY_MS : 0));
    if (this.scan !== s) return;
    let drift = 0;
    let corrections = 0;
    for (const key of s.suspects) {
      if (s.touched.has(key)) continue;
      const slash = key.indexOf('/');
      const sub = key.slice(0, slash);
      const name = key.slice(slash + 1);
      const cl = classifySpoolName(name);
      const before = cl ? this.state.get(sub, cl.id) : undefined;
      const snap = before ? { h: before.h, d: before.d, j: before.j, f: before.frozen } : null;
      this.processName(sub, name);
      const after = cl ? this.state.get(sub, cl.id) : undefined;
      const hadH = (snap?.h ?? -1) >= 0;
      const hasH = (after?.h ?? -1) >= 0;
      if (hadH !== hasH) drift++;
      const changed =
        JSON.stringify(snap) !==
        JSON.stringify(after ? { h: after.h, d: after.d, j: after.j, f: after.frozen } : null);
      if (changed) corrections++;
    }
    // entries a racing listing left unsized
    if (s.kind === 'initial' && this.state.t.unsized > 0) {
      for (const u of this.state.unsizedMessages()) this.processName(u.sub, `${u.id}-H`);
    }
    const seconds = (performance.now() - s.started) / 1000;
    if (s.kind === 'rescan') {
      this.stats.rescans++;
      this.stats.lastDrift = drift;
      this.stats.lastRescanSeconds = seconds;
      if (corrections > 0) {
        this.stats.corrections += corrections;
        this.log.warn('rescan corrected the incremental state (events were lost)', { drift, corrections });
      } else this.log.debug('rescan found no drift', { seconds: seconds.toFixed(3) });
    } else {
      this.stats.scans++;
      this.complete = true;
      compactAfterBulkLoad();
      this.log.info('spool scanned', {
        messages: this.state.t.messages,
        bytes: this.state.t.bytes,
        frozen: this.state.t.frozen,
        headers_read: headersRead,
        detail_ms: s.detailMs.toFixed(1),
        seconds: seconds.toFixed(3),
      });
    }
    this.scan = null;
    this.readFs();
    this.onChange?.();
    s.resolve();
  }
}
