// End to end with real Exim (issue 3): the spill to the backup MX.
//
//   sender 127.0.0.4 --manualroute, in MX order--> primary 127.0.0.2 (spool on a small tmpfs, queue_only,
//                                                  the ACL kit from deploy/exim reading the agent's flag)
//                                              \-> backup  127.0.0.3 (queue_only)
//
// The agent (node dist/cli.js run) guards the primary's spool. Mail fills the primary until the agent
// defers; the primary then answers 421 at connect and the sender's next messages go to the backup; the
// primary's queue drains; the agent releases; once the sender's retry hints are cleared the primary
// takes mail again. Once on bytes (~200 KB messages), once on inodes only (a tmpfs with few inodes,
// small messages). Then the closed loop: `spoolguard_relay_enforcing` is 1 in both states with the kit
// in place and 0 against a primary whose ACL ignores the flag.
//
// Needs root (tmpfs mounts) and exim4. Needs `npm run build` (dist/cli.js). Without dist/cli.js the
// tests are skipped. With SPOOL_GUARD_E2E_STANDIN=1 a minimal in-test stand-in drives the flag
// from statfs (same thresholds), which exercises the Exim half on its own; the agent-only checks
// (metrics, status, closed loop) are skipped in that mode.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { probeGreeting } from '../../src/guard/smtp-probe.js';
import { Exim, eximAvailable, freePort } from '../helpers/exim.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/cli.js');
// SPOOL_GUARD_E2E_STANDIN=1 uses the stand-in even when dist/cli.js exists (to check the Exim half alone).
const standIn = process.env.SPOOL_GUARD_E2E_STANDIN === '1';
const haveCli = existsSync(CLI) && !standIn;
const skip = !isRoot || !eximAvailable || (!haveCli && !standIn);
const agentOnly = { skip: !haveCli };

// ---------------------------------------------------------------------------------------------
// The agent, or the stand-in.

interface Thresholds {
  defer: Record<string, number | null>;
  release: Record<string, number | null>;
}

interface Guard {
  flag: string;
  metrics(): Promise<string>;
  status(): Promise<unknown>;
  log(): string;
  stop(): Promise<void>;
}

async function startAgent(o: {
  dir: string;
  spool: string;
  flag: string;
  relay?: string;
  th: Thresholds;
}): Promise<Guard> {
  const port = await freePort(['127.0.0.1']);
  const cfg = join(o.dir, 'config.yml');
  const obj = {
    rescan: { schedule: '* * * * *' },
    spools: [
      {
        name: 'primary',
        path: o.spool,
        mta: 'exim',
        flag_file: o.flag,
        ...(o.relay ? { relay_address: o.relay } : {}),
        defer: o.th.defer,
        release: o.th.release,
        min_defer_seconds: 1,
      },
    ],
  };
  // JSON is YAML.
  writeFileSync(cfg, JSON.stringify(obj, null, 2));
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI, 'run', '--config', cfg, '--web.listen-address', `127.0.0.1:${port}`, '--log.level', 'debug'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  let exited: number | null = null;
  child.on('exit', (c) => {
    exited = c ?? -1;
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    'the agent to be ready',
    async () => {
      if (exited !== null) throw new Error(`agent exited ${exited}: ${out}`);
      const r = await fetch(`${base}/readyz`);
      return r.status === 200;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  ).catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\nagent output:\n${out}`);
  });
  return {
    flag: o.flag,
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    status: async () => (await fetch(`${base}/api/v1/status`)).json(),
    log: () => out,
    stop: async () => {
      if (exited !== null) return;
      child.kill('SIGTERM');
      await waitFor('the agent to exit', () => exited !== null, { timeoutMs: 10_000 }).catch(() =>
        child.kill('SIGKILL'),
      );
    },
  };
}

/** A minimal statfs-driven flag writer with the agent's flag format (only when dist/cli.js is missing). */
function startStandIn(o: { spool: string; flag: string; th: Thresholds }): Guard {
  let since = 0;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    const s = statfsSync(o.spool);
    const bytes = 1 - s.bfree / s.blocks;
    const inodes = 1 - s.ffree / s.files;
    const reasons: string[] = [];
    const d = o.th.defer;
    const r = o.th.release;
    if (d.used_bytes_ratio != null && bytes >= d.used_bytes_ratio) reasons.push('bytes');
    if (d.used_inodes_ratio != null && inodes >= d.used_inodes_ratio) reasons.push('inodes');
    const on = existsSync(o.flag);
    if (reasons.length && !on) {
      since = Math.floor(Date.now() / 1000);
      writeFileSync(`${o.flag}.tmp`, `reasons=${reasons.join(',')} since=${since}\n`, { mode: 0o644 });
      renameSync(`${o.flag}.tmp`, o.flag);
    } else if (on && !reasons.length) {
      const released =
        (r.used_bytes_ratio == null || bytes < r.used_bytes_ratio) &&
        (r.used_inodes_ratio == null || inodes < r.used_inodes_ratio) &&
        Date.now() / 1000 - since >= 1;
      if (released) rmSync(o.flag, { force: true });
    }
    setTimeout(tick, 5);
  };
  tick();
  return {
    flag: o.flag,
    metrics: async () => '',
    status: async () => ({}),
    log: () => '',
    stop: async () => {
      stopped = true;
    },
  };
}

/** `name{labels} value` lines of a Prometheus exposition -> value of the first series matching all labels. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[l[1]] = l[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function usage(spool: string): { bytes: number; inodes: number } {
  const s = statfsSync(spool);
  return { bytes: 1 - s.bfree / s.blocks, inodes: 1 - s.ffree / s.files };
}

function flagReasons(flag: string): string[] {
  const m = /^reasons=(\S*) since=\d+/.exec(readFileSync(flag, 'utf8'));
  assert.ok(m, 'flag file format reasons=... since=...');
  return m[1].split(',');
}

// ---------------------------------------------------------------------------------------------
// The three Exims.

interface World {
  dir: string;
  flag: string;
  tmpfs: Tmpfs;
  primary: Exim;
  backup: Exim;
  sender: Exim;
  guard: Guard;
}

async function setUp(o: {
  name: string;
  tmpfsSize: string;
  nrInodes?: number;
  th: Thresholds;
  checkSpoolSpace: string;
  checkSpoolInodes: string;
}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), `sg-e2e-${o.name}-`));
  chmodSync(dir, 0o755);
  // The flag directory must be searchable by the Exim user (as /run/spool-guard is, 0755).
  const run = join(dir, 'run');
  mkdirSync(run, { mode: 0o755 });
  const flag = join(run, 'exim.defer');
  const tmpfs = mountTmpfs(o.tmpfsSize, { nrInodes: o.nrInodes });
  const started: Exim[] = [];
  try {
    const port = await freePort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const primary = await Exim.create({
      name: 'primary',
      address: '127.0.0.2',
      port,
      spool: tmpfs.dir,
      dir: join(dir, 'primary'),
      queueOnly: true,
      aclKit: { flagFile: flag },
      checkSpoolSpace: o.checkSpoolSpace,
      checkSpoolInodes: o.checkSpoolInodes,
    });
    const backup = await Exim.create({
      name: 'backup',
      address: '127.0.0.3',
      port,
      dir: join(dir, 'backup'),
      queueOnly: true,
    });
    const sender = await Exim.create({
      name: 'sender',
      address: '127.0.0.4',
      port,
      dir: join(dir, 'sender'),
      route: { hosts: ['127.0.0.2', '127.0.0.3'], port },
      retry: '* * F,1h,10m',
    });
    for (const e of [primary, backup, sender]) {
      started.push(e);
      await e.start();
    }
    const guard = haveCli
      ? await startAgent({ dir, spool: tmpfs.dir, flag, relay: primary.listen, th: o.th })
      : startStandIn({ spool: tmpfs.dir, flag, th: o.th });
    return { dir, flag, tmpfs, primary, backup, sender, guard };
  } catch (e) {
    // A half-built world must not leave daemons or mounts behind.
    for (const x of started) await x.stop().catch(() => undefined);
    tmpfs.dispose();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function tearDown(w: World | undefined): Promise<void> {
  if (!w) return;
  await w.guard.stop();
  for (const e of [w.sender, w.backup, w.primary]) await e.stop();
  w.tmpfs.dispose();
  rmSync(w.dir, { recursive: true, force: true });
}

/** One message through the sender, delivered in the foreground (-odi); returns the host that took it. */
function sendThroughSender(w: World, size: number, n: number): string {
  const before = w.sender.mainlog().length;
  const id = w.sender.submit({ to: `rcpt${n}@dest.test`, size, mode: 'odi' });
  const log = w.sender.mainlog().slice(before);
  const m = new RegExp(`^\\S+ \\S+ ${id} => \\S+ .*H=(\\S+) \\[`, 'm').exec(log);
  assert.ok(m, `message ${id} delivered by the sender:\n${log}`);
  return m[1];
}

/**
 * Fills the primary through the sender until the flag appears; then sends `spill` more, which must all
 * go to the backup. Returns figures for the report.
 */
async function fillAndSpill(w: World, size: number, maxMessages: number, spill: number) {
  let toPrimary = 0;
  let n = 0;
  const t0 = Date.now();
  while (!existsSync(w.flag)) {
    assert.ok(
      n < maxMessages,
      `no defer after ${n} messages; usage ${JSON.stringify(usage(w.tmpfs.dir))}\n${w.guard.log()}`,
    );
    const host = sendThroughSender(w, size, n++);
    assert.equal(host, '127.0.0.2', 'before defer mode the primary takes the mail');
    toPrimary++;
    // The agent reacts to the write within milliseconds; give it up to 30 ms before the next message.
    if (!existsSync(w.flag))
      await waitFor('the flag', () => existsSync(w.flag), { timeoutMs: 30, intervalMs: 5 }).catch(
        () => undefined,
      );
  }
  const fillMs = Date.now() - t0;
  const atDefer = usage(w.tmpfs.dir);
  assert.equal(w.primary.bpc(), toPrimary, 'the primary queued every message it accepted');

  const g = await probeGreeting(w.primary.listen, { timeoutMs: 3000 });
  assert.equal(g.code, 421, `the primary answers 421 at connect while deferring: ${JSON.stringify(g)}`);
  assert.match(g.line ?? '', /^421[- ]4\.3\.2 /);

  const spilled: string[] = [];
  for (let i = 0; i < spill; i++) spilled.push(sendThroughSender(w, size, n++));
  assert.deepEqual(spilled, Array(spill).fill('127.0.0.3'), 'the spill goes to the backup MX');
  assert.equal(w.backup.bpc(), spill);
  assert.equal(w.primary.bpc(), toPrimary, 'the primary took nothing while deferring');
  // The first spilled message met the 421; the later ones skipped the primary on its retry hint.
  assert.match(
    w.sender.mainlog(),
    /H=127\.0\.0\.2 \[127\.0\.0\.2\]: SMTP error from remote mail server after initial connection: 421[- ]4\.3\.2 /,
  );
  return { toPrimary, fillMs, atDefer };
}

/** After the drain: the agent releases; retry hints still send mail to the backup until cleared. */
async function releaseAndReturn(w: World, size: number) {
  const t0 = Date.now();
  await waitFor('defer mode to be released', () => !existsSync(w.flag), { timeoutMs: 15_000 });
  const releaseMs = Date.now() - t0;
  const g = await probeGreeting(w.primary.listen, { timeoutMs: 3000 });
  assert.equal(g.code, 220, `the primary greets with 220 again: ${JSON.stringify(g)}`);

  // The sender still holds a retry hint for the primary: the next message skips it.
  const backupBefore = w.backup.bpc();
  assert.equal(
    sendThroughSender(w, size, 10_000),
    '127.0.0.3',
    'retry hint: the primary is skipped until its retry time',
  );
  assert.equal(w.backup.bpc(), backupBefore + 1);

  w.sender.clearRetry();
  const primaryBefore = w.primary.bpc();
  assert.equal(
    sendThroughSender(w, size, 10_001),
    '127.0.0.2',
    'after clearing the hints the primary takes mail again',
  );
  assert.equal(w.primary.bpc(), primaryBefore + 1);
  return { releaseMs };
}

// ---------------------------------------------------------------------------------------------

describe('spill to the backup MX on bytes (~200 KB messages, 16 MiB tmpfs)', { skip }, () => {
  let w: World;
  const th: Thresholds = {
    defer: {
      used_bytes_ratio: 0.5,
      used_inodes_ratio: 0.9,
      queue_messages: null,
      time_to_full_seconds: null,
      memory_available_bytes: null,
    },
    release: { used_bytes_ratio: 0.2, used_inodes_ratio: 0.5, queue_messages: null },
  };
  before(async () => {
    // Exim's own checks set low enough that only spool-guard acts here.
    w = await setUp({ name: 'bytes', tmpfsSize: '16m', th, checkSpoolSpace: '512K', checkSpoolInodes: '20' });
  });
  after(() => tearDown(w));

  test('fill, defer (421), spill to the backup, drain, release, primary takes mail again', async (t) => {
    const f = await fillAndSpill(w, 200 * 1024, 200, 5);
    assert.ok(f.atDefer.bytes >= 0.5, `defer at or above the enter line: ${f.atDefer.bytes}`);
    assert.ok(f.atDefer.bytes < 0.6, `little overshoot: ${f.atDefer.bytes}`);
    assert.deepEqual(flagReasons(w.flag), ['bytes']);
    t.diagnostic(
      `bytes: ${f.toPrimary} messages to the primary in ${f.fillMs} ms; used ratio when the flag appeared ${f.atDefer.bytes.toFixed(4)} (enter 0.5)`,
    );

    // Drain by delivering: the primary's local delivery goes to a maildir outside the tmpfs.
    w.primary.deliverAll();
    await waitFor('the primary queue to drain', () => w.primary.bpc() === 0, { timeoutMs: 30_000 });
    assert.equal(w.primary.maildirCount(), f.toPrimary);
    const r = await releaseAndReturn(w, 200 * 1024);
    t.diagnostic(`bytes: released ${r.releaseMs} ms after the drain (min_defer_seconds 1)`);
  });

  test('the agent shows the incident in metrics and status', agentOnly, async () => {
    const m = await w.guard.metrics();
    assert.equal(metric(m, 'spoolguard_defer_active', { spool: 'primary' }), 0);
    assert.ok((metric(m, 'spoolguard_defer_transitions_total', { spool: 'primary' }) ?? 0) >= 1);
    assert.equal(metric(m, 'spoolguard_queue_messages', { spool: 'primary' }), w.primary.bpc());
    const st = JSON.stringify(await w.guard.status());
    assert.match(st, /primary/);
  });
});

describe('spill to the backup MX on inodes only (small messages, tmpfs with 400 inodes)', { skip }, () => {
  let w: World;
  const th: Thresholds = {
    defer: {
      used_bytes_ratio: 0.9,
      used_inodes_ratio: 0.5,
      queue_messages: null,
      time_to_full_seconds: null,
      memory_available_bytes: null,
    },
    release: { used_bytes_ratio: 0.8, used_inodes_ratio: 0.2, queue_messages: null },
  };
  before(async () => {
    w = await setUp({
      name: 'inodes',
      tmpfsSize: '64m',
      nrInodes: 400,
      th,
      checkSpoolSpace: '1M',
      checkSpoolInodes: '10',
    });
  });
  after(() => tearDown(w));

  test('fill inodes, defer (421), spill, -Mrm drain, release, primary takes mail again', async (t) => {
    const f = await fillAndSpill(w, 1024, 400, 3);
    assert.ok(f.atDefer.inodes >= 0.5, `inodes at or above the enter line: ${f.atDefer.inodes}`);
    assert.ok(f.atDefer.bytes < 0.1, `bytes far from any line: ${f.atDefer.bytes}`);
    assert.deepEqual(flagReasons(w.flag), ['inodes']);
    t.diagnostic(
      `inodes: ${f.toPrimary} messages to the primary in ${f.fillMs} ms; inode ratio when the flag appeared ${f.atDefer.inodes.toFixed(4)} (enter 0.5), bytes ${f.atDefer.bytes.toFixed(4)}`,
    );
    w.primary.remove();
    assert.equal(w.primary.bpc(), 0);
    const r = await releaseAndReturn(w, 1024);
    t.diagnostic(`inodes: released ${r.releaseMs} ms after the -Mrm drain`);
  });
});

describe('closed loop: spoolguard_relay_enforcing against the real primary', {
  skip: skip || !haveCli,
}, () => {
  let w: World;
  const th: Thresholds = {
    defer: {
      used_bytes_ratio: 0.5,
      used_inodes_ratio: 0.9,
      queue_messages: null,
      time_to_full_seconds: null,
      memory_available_bytes: null,
    },
    release: { used_bytes_ratio: 0.2, used_inodes_ratio: 0.5, queue_messages: null },
  };
  before(async () => {
    w = await setUp({ name: 'loop', tmpfsSize: '16m', th, checkSpoolSpace: '512K', checkSpoolInodes: '20' });
  });
  after(() => tearDown(w));

  const enforcing = async () =>
    metric(await w.guard.metrics(), 'spoolguard_relay_enforcing', { spool: 'primary' });

  test('1 while accepting, 1 while deferring (421), 1 again after the release', async () => {
    await waitFor('enforcing=1 while accepting', async () => (await enforcing()) === 1, {
      timeoutMs: 40_000,
    });
    await fillAndSpill(w, 200 * 1024, 200, 1);
    await waitFor(
      'enforcing=1 while deferring',
      async () => {
        const m = await w.guard.metrics();
        return (
          metric(m, 'spoolguard_defer_active', { spool: 'primary' }) === 1 &&
          metric(m, 'spoolguard_relay_enforcing', { spool: 'primary' }) === 1
        );
      },
      { timeoutMs: 10_000 },
    );
    w.primary.remove();
    await waitFor('released', () => !existsSync(w.flag), { timeoutMs: 15_000 });
    await waitFor(
      'enforcing=1 after the release',
      async () => {
        const m = await w.guard.metrics();
        return (
          metric(m, 'spoolguard_defer_active', { spool: 'primary' }) === 0 &&
          metric(m, 'spoolguard_relay_enforcing', { spool: 'primary' }) === 1
        );
      },
      { timeoutMs: 10_000 },
    );
  });

  test('0 against a primary whose ACL does not read the flag', async () => {
    // The same primary, restarted with a config without the kit (a "forgot the .include" relay).
    await w.primary.stop();
    const plain = await Exim.create({
      name: 'primary',
      address: '127.0.0.2',
      port: w.primary.port,
      spool: w.tmpfs.dir,
      dir: join(w.dir, 'primary-plain'),
      queueOnly: true,
      checkSpoolSpace: '512K',
      checkSpoolInodes: '20',
    });
    await plain.start();
    try {
      w.sender.clearRetry();
      let n = 0;
      while (!existsSync(w.flag)) {
        assert.ok(n < 200, 'no defer');
        w.sender.submit({ to: `x${n++}@dest.test`, size: 200 * 1024, mode: 'odi' });
        if (!existsSync(w.flag))
          await waitFor('the flag', () => existsSync(w.flag), { timeoutMs: 30, intervalMs: 5 }).catch(
            () => undefined,
          );
      }
      const g = await probeGreeting(plain.listen);
      assert.equal(g.code, 220, 'the relay ignores the flag');
      await waitFor(
        'enforcing=0 while deferring against a relay that ignores it',
        async () => (await enforcing()) === 0,
        {
          timeoutMs: 10_000,
        },
      );
      assert.match(w.guard.log(), /level=error/);
    } finally {
      await plain.stop();
    }
  });
});
