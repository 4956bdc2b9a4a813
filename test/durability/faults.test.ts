// Fault injection: kill -9 at seeded random moments during save and during restore;
// a rerun must complete the job byte-exact, with no temporaries left behind.
// Reproduce a run with SG_FAULT_SEED=<seed printed below>.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { readCurrent, walkManifest } from '../../src/durability/manifest.js';
import { diffSnapshots, type FileFacts, snapshotSpool } from '../../src/durability/snapshot.js';
import { ensureSpoolDirs, writeMessage } from '../../src/spool/fixture.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const mainJs = join(root, 'dist/durability/main.js');
const KILLS = Number(process.env.SG_FAULT_KILLS ?? 50);
const seed = Number(process.env.SG_FAULT_SEED ?? Date.now() % 2 ** 31);

function mulberry32(a: number) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [mainJs, ...args, '--quiet'], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts the command and SIGKILLs it after `ms` (or lets it finish first). */
function runAndKill(args: string[], ms: number): Promise<'killed' | 'finished'> {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [mainJs, ...args, '--quiet'], { stdio: 'ignore' });
    const timer = setTimeout(() => c.kill('SIGKILL'), ms);
    c.on('error', rej);
    c.on('exit', (_code, signal) => {
      clearTimeout(timer);
      res(signal === 'SIGKILL' ? 'killed' : 'finished');
    });
  });
}

/**
 * How long one complete run takes: the median of three, after a warm-up run (a single timing
 * was sometimes a cold, slow one, and then most kills landed after the run had finished).
 */
function timeRun(args: string[], before: () => void = () => {}): number {
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    before();
    const t0 = Date.now();
    const r = run(args);
    assert.equal(r.code, 0, r.err);
    if (i > 0) times.push(Date.now() - t0);
  }
  return times.sort((a, b) => a - b)[1];
}

function tempsIn(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (
        n.startsWith('.sg-') ||
        n.startsWith('.partial-') ||
        n.startsWith('.retired-') ||
        n.endsWith('.tmp')
      ) {
        out.push(p);
      }
      if (statSync(p).isDirectory()) walk(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** The generation `current` names holds exactly the spool's files, verified by hash. */
function assertBackupMatches(backup: string, want: Map<string, FileFacts>) {
  const gen = readCurrent(backup);
  assert.ok(gen, 'current names a generation');
  const seen = new Set<string>();
  const check = walkManifest(join(backup, gen, 'manifest.json'), (e) => {
    const w = want.get(e.path);
    assert.ok(w, `unexpected ${e.path} in the backup`);
    assert.equal(e.sha256, w.sha256, e.path);
    assert.ok(!seen.has(e.path), `duplicate ${e.path}`);
    seen.add(e.path);
  });
  assert.ok(check.ok, check.ok ? '' : check.error);
  assert.equal(seen.size, want.size, 'every file saved once');
  const saved = snapshotSpool(join(backup, gen));
  for (const [p, f] of saved) assert.equal(f.sha256, want.get(p)?.sha256, p);
}

describe('kill -9 at random moments', { skip: (!isRoot && 'needs root (tmpfs)') || false }, () => {
  let spoolFs: Tmpfs;
  let targetFs: Tmpfs;
  let backupFs: Tmpfs;
  let work: string;
  let want: Map<string, FileFacts>;
  const rnd = mulberry32(seed);

  before(() => {
    console.log(`# fault injection seed=${seed} (SG_FAULT_SEED=${seed} to repeat), ${KILLS} kills each`);
    // the fault tests kill a real separate process: the compiled entry point
    spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'ignore' });
    assert.ok(existsSync(mainJs), `${mainJs} missing: npm run build`);
    spoolFs = mountTmpfs('64m');
    targetFs = mountTmpfs('64m');
    backupFs = mountTmpfs('128m');
    work = mkdtempSync(join(tmpdir(), 'sg-dur-fault-'));
    ensureSpoolDirs(spoolFs.dir);
    for (let i = 0; i < 200; i++) {
      writeMessage(spoolFs.dir, {
        split: i % 2 === 0,
        format: i % 3 ? 'old' : 'new',
        journal: i % 4 === 0,
        frozen: i % 9 === 0,
        msglog: true,
        bodyBytes: 200 + ((i * 7919) % 20_000),
      });
    }
    want = snapshotSpool(spoolFs.dir);
  });
  after(() => {
    spoolFs?.dispose();
    targetFs?.dispose();
    backupFs?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test(`save: ${KILLS} kills, each followed by a rerun`, async () => {
    const backup = join(backupFs.dir, 'save');
    const args = ['save', '--spool', spoolFs.dir, '--to', backup];
    // each kill at a uniform moment within a typical run (runs vary: some finish first)
    const span = timeRun(args);
    let killed = 0;
    for (let i = 0; i < KILLS; i++) {
      const at = Math.floor(rnd() * span);
      if ((await runAndKill(args, at)) === 'killed') killed++;
      const r = run(args);
      assert.equal(r.code, 0, `kill ${i} at ${at} ms (seed ${seed}): rerun failed: ${r.err}`);
      assertBackupMatches(backup, want);
      assert.deepEqual(tempsIn(backup), [], `kill ${i} at ${at} ms (seed ${seed}): leftovers`);
      assert.ok(
        readdirSync(backup).filter((n) => n.startsWith('gen-')).length <= 2,
        'old generations retired',
      );
    }
    assert.deepEqual(diffSnapshots(want, snapshotSpool(spoolFs.dir)), [], 'spool untouched');
    console.log(
      `# save: ${killed} of ${KILLS} runs killed before finishing (kills within ${span.toFixed(0)} ms)`,
    );
    assert.ok(killed >= KILLS / 2, `only ${killed} of ${KILLS} runs were killed before finishing`);
  });

  test(`restore: ${KILLS} kills, each followed by a rerun`, async () => {
    const backup = join(work, 'restore-src');
    assert.equal(run(['save', '--spool', spoolFs.dir, '--to', backup]).code, 0);
    const gen = readCurrent(backup)!;
    const mark = join(backup, gen, 'restored');
    const target = targetFs.dir;
    const args = ['restore', '--from', backup, '--spool', target];
    const clear = () => {
      for (const n of readdirSync(target)) rmSync(join(target, n), { recursive: true, force: true });
      if (existsSync(mark)) unlinkSync(mark);
    };
    const span = timeRun(args, clear);
    let killed = 0;
    for (let i = 0; i < KILLS; i++) {
      clear();
      const at = Math.floor(rnd() * span);
      if ((await runAndKill(args, at)) === 'killed') killed++;
      const r = run(args);
      assert.equal(r.code, 0, `kill ${i} at ${at} ms (seed ${seed}): rerun failed: ${r.out} ${r.err}`);
      const diff = diffSnapshots(want, snapshotSpool(target, { includeTemps: true }));
      assert.deepEqual(diff, [], `kill ${i} at ${at} ms (seed ${seed})`);
      assert.deepEqual(tempsIn(target), [], `kill ${i} at ${at} ms (seed ${seed}): temporaries left`);
      assert.ok(existsSync(mark), 'marked as restored');
      // and once more: a completed restore changes nothing
      const again = run(args);
      assert.equal(again.code, 0);
      assert.match(again.out, /already restored/);
    }
    console.log(
      `# restore: ${killed} of ${KILLS} runs killed before finishing (kills within ${span.toFixed(0)} ms)`,
    );
    assert.ok(killed >= KILLS / 2, `only ${killed} of ${KILLS} runs were killed before finishing`);
  });
});
