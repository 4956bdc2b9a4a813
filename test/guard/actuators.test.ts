// Actuators alone: the flag file, the lock, the override state and the hooks.
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { SpoolConfig } from '../../src/config.js';
import { buildConfig } from '../../src/config.js';
import { acquireLock, FlagFile, LockError } from '../../src/guard/flag.js';
import { SpoolGuard } from '../../src/guard/guard.js';
import { runHook } from '../../src/guard/hooks.js';
import { silentLogger } from '../../src/log.js';
import type { Observation, SourceStats, SpoolSource } from '../../src/spool/source.js';

const work = mkdtempSync(join(tmpdir(), 'sg-act-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A source whose observation the test sets (the guard's logic is under test, not the spool). */
class FixedSource implements SpoolSource {
  name = 'x';
  onChange = null;
  stats = {} as SourceStats;
  obs: Observation = {
    up: true,
    error: null,
    fs: {
      fstype: 'tmpfs',
      typeMagic: 0x01021994,
      sizeBytes: 1000,
      availBytes: 900,
      freeBytes: 900,
      files: 100,
      filesFree: 90,
    },
    listed: true,
    complete: true,
    queue: {
      messages: 0,
      bytes: 0,
      frozen: 0,
      badHeaders: 0,
      unsized: 0,
      dataWithoutHeader: 0,
      journalWithoutHeader: 0,
      oldest: null,
    },
    strays: { header_temp: 0, data_without_header: 0, journal_without_header: 0, other: 0 },
    atMs: 0,
  };
  start() {}
  async stop() {}
  tick() {}
  async rescan() {}
  observe() {
    return this.obs;
  }
  setUsed(ratio: number) {
    this.obs = {
      ...this.obs,
      fs: { ...this.obs.fs!, availBytes: 1000 * (1 - ratio), freeBytes: 1000 * (1 - ratio) },
    };
  }
}

function spoolCfg(flagFile: string, extra: Record<string, unknown> = {}): SpoolConfig {
  return buildConfig(
    {
      spools: [
        {
          name: 'x',
          path: work,
          flag_file: flagFile,
          min_defer_seconds: 0,
          defer: { time_to_full_seconds: null },
          ...extra,
        },
      ],
    },
    null,
  ).spools[0];
}

describe('flag file', () => {
  test('atomic write leaves no temporary file and one line', () => {
    const f = new FlagFile(join(work, 'a', 'x.defer'));
    f.write({ reasons: ['bytes', 'queue'], since: 1700000000.7, until: null });
    assert.equal(readFileSync(f.path, 'utf8'), 'reasons=bytes,queue since=1700000000\n');
    assert.deepEqual(readdirSync(join(work, 'a')), ['x.defer']);
    assert.equal(lstatSync(join(work, 'a')).mode & 0o777, 0o755);
    assert.deepEqual(f.read(), { reasons: ['bytes', 'queue'], since: 1700000000, until: null });
    f.remove();
    assert.equal(existsSync(f.path), false);
    f.remove(); // removing an absent flag is fine
  });

  test('a symlinked flag directory is refused, its target untouched', () => {
    const target = join(work, 'elsewhere');
    mkdirSync(target);
    symlinkSync(target, join(work, 'linkdir'));
    const f = new FlagFile(join(work, 'linkdir', 'x.defer'));
    assert.throws(() => f.write({ reasons: ['bytes'], since: 1, until: null }), /symlink/);
    assert.deepEqual(readdirSync(target), []);
  });

  test('guard: flag directory unusable -> error counted, keeps running, recovers', () => {
    const dir = join(work, 'ro');
    mkdirSync(dir);
    const src = new FixedSource();
    const g = new SpoolGuard(spoolCfg(join(dir, 'x.defer')), src, silentLogger, () => null);
    g.start();
    // the flag directory is replaced by a file (works as root too, unlike a chmod)
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'not a directory');
    src.setUsed(0.9);
    g.evaluate(1000);
    assert.ok(g.counters.flagWriteErrors >= 1);
    assert.equal(g.state.active, true, 'the decision stands');
    assert.equal(g.flagPresent, false, 'defer_active reports what is on disk');
    g.evaluate(1000.5);
    assert.ok(g.counters.flagWriteErrors >= 2, 'retried on the next evaluation');
    rmSync(dir);
    g.evaluate(1001);
    assert.equal(g.flagPresent, true, 'recovers once the directory can be made');
    assert.match(readFileSync(join(dir, 'x.defer'), 'utf8'), /^reasons=bytes since=1000\n$/);
    g.stop();
  });

  test('guard: restart mid-incident takes the state from the flag; the override survives', () => {
    const flag = join(work, 'restart', 'x.defer');
    const src = new FixedSource();
    src.setUsed(0.9);
    const g = new SpoolGuard(spoolCfg(flag, { min_defer_seconds: 600 }), src, silentLogger, () => null);
    g.start();
    g.evaluate(1000);
    g.setOverride('on', 3600, 1001);
    g.stop();
    src.setUsed(0.1); // pressure gone while the agent was down
    const g2 = new SpoolGuard(spoolCfg(flag, { min_defer_seconds: 600 }), src, silentLogger, () => null);
    g2.start();
    assert.equal(g2.override?.mode, 'on');
    g2.evaluate(1002);
    assert.equal(g2.flagPresent, true, 'a restart never re-opens the relay');
    g2.setOverride('auto', null, 1003);
    // SPEC: after a manual on, defer mode ends at once unless a threshold holds
    assert.equal(g2.flagPresent, false, 'auto with no threshold holding releases at once');
    g2.stop();
  });
});

describe('lock', () => {
  test('a live holder refuses; a stale lock (dead pid) is taken over', () => {
    const p = join(work, 'lock', '.x.lock');
    const release = acquireLock(p);
    assert.throws(() => acquireLock(p), LockError);
    release();
    writeFileSync(p, '999999 12345\n'); // a killed agent's lock
    const r2 = acquireLock(p);
    assert.match(readFileSync(p, 'utf8'), new RegExp(`^${process.pid} `));
    r2();
    assert.equal(existsSync(p), false);
  });
});

describe('hooks', () => {
  test('runs argv without a shell, with the reasons in the environment', async () => {
    const out = join(work, 'hook-out');
    const r = await runHook(
      ['/bin/sh', '-c', `echo "$SPOOL_GUARD_EVENT $SPOOL_GUARD_REASONS" > ${out}`],
      { SPOOL_GUARD_EVENT: 'defer', SPOOL_GUARD_REASONS: 'bytes,queue' },
      5,
      silentLogger,
    );
    assert.equal(r.ok, true);
    assert.equal(readFileSync(out, 'utf8'), 'defer bytes,queue\n');
    const lit = await runHook(['/bin/echo', '$(touch /tmp/never)'], {}, 5, silentLogger);
    assert.equal(lit.ok, true);
  });

  test('a hanging hook is killed at its timeout; a missing one fails cleanly', async () => {
    const t0 = Date.now();
    const r = await runHook(['/bin/sleep', '30'], {}, 0.3, silentLogger);
    assert.equal(r.ok, false);
    assert.equal(r.timedOut, true);
    assert.ok(Date.now() - t0 < 5000);
    const m = await runHook(['/nonexistent/hook'], {}, 1, silentLogger);
    assert.equal(m.ok, false);
    const f = await runHook(['/bin/false'], {}, 1, silentLogger);
    assert.equal(f.ok, false);
    assert.equal(f.code, 1);
  });
});
