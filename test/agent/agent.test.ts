// Integration: the agent process with its HTTP API, metrics, flag file and CLI.
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ensureSpoolDirs,
  type FixtureMessage,
  removeMessage,
  writeMessage,
} from '../../src/spool/fixture.js';
import { metricValue, type RunningAgent, runCli, startAgent } from '../helpers/agent.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const SPEC_METRICS = [
  'spoolguard_spool_up',
  'spoolguard_spool_info',
  'spoolguard_filesystem_size_bytes',
  'spoolguard_filesystem_avail_bytes',
  'spoolguard_filesystem_files',
  'spoolguard_filesystem_files_free',
  'spoolguard_queue_messages',
  'spoolguard_queue_bytes',
  'spoolguard_queue_frozen_messages',
  'spoolguard_queue_oldest_message_timestamp_seconds',
  'spoolguard_time_to_full_seconds',
  'spoolguard_host_memory_available_bytes',
  'spoolguard_defer_active',
  'spoolguard_defer_reason',
  'spoolguard_override',
  'spoolguard_defer_transitions_total',
  'spoolguard_defer_seconds_total',
  'spoolguard_defer_threshold_ratio',
  'spoolguard_defer_threshold_messages',
  'spoolguard_flag_write_errors_total',
  'spoolguard_rescan_drift_messages',
  'spoolguard_build_info',
];

describe('agent', { skip: !isRoot && 'needs root to mount tmpfs' }, () => {
  let fs: Tmpfs;
  let work: string;
  let agent: RunningAgent | null = null;
  let cfg: string;
  let flag: string;
  const token = 's3cret-token-for-tests';
  const queued: FixtureMessage[] = [];
  before(() => {
    fs = mountTmpfs('16m');
    ensureSpoolDirs(fs.dir);
    work = mkdtempSync(join(tmpdir(), 'sg-agent-'));
    flag = join(work, 'run', 'exim.defer');
    writeFileSync(join(work, 'token'), token + '\n', { mode: 0o600 });
    cfg = join(work, 'config.yml');
    writeFileSync(
      cfg,
      `api: { token_file: token }
rescan: { schedule: "*/5 * * * * *" }
spools:
  - name: exim
    path: ${fs.dir}
    flag_file: run/exim.defer
    defer: { used_bytes_ratio: 0.5, queue_messages: 300, time_to_full_seconds: null }
    release: { used_bytes_ratio: 0.3, queue_messages: 100 }
    min_defer_seconds: 1
`,
    );
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    fs.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test('exports every SPEC metric; figures match the spool', async () => {
    for (let i = 0; i < 50; i++) queued.push(writeMessage(fs.dir, { split: true, frozen: i < 3 }));
    agent = await startAgent(['--config', cfg]);
    await waitFor(
      'bytes complete',
      async () =>
        metricValue(await agent!.metrics(), 'spoolguard_queue_bytes', { spool: 'exim' }) !== undefined,
    );
    const m = await agent.metrics();
    for (const name of SPEC_METRICS)
      assert.ok(m.includes(`\n${name}`) || m.startsWith(name), `missing ${name}`);
    assert.equal(metricValue(m, 'spoolguard_queue_messages', { spool: 'exim' }), 50);
    assert.equal(metricValue(m, 'spoolguard_queue_frozen_messages', { spool: 'exim' }), 3);
    assert.equal(metricValue(m, 'spoolguard_spool_info', { spool: 'exim', fstype: 'tmpfs' }), 1);
    assert.equal(metricValue(m, 'spoolguard_defer_active', { spool: 'exim' }), 0);
    assert.equal(
      metricValue(m, 'spoolguard_defer_threshold_ratio', { spool: 'exim', resource: 'bytes', edge: 'enter' }),
      0.5,
    );
    assert.equal(
      metricValue(m, 'spoolguard_time_to_full_seconds', { spool: 'exim' }),
      Number.POSITIVE_INFINITY,
    );
    const st = await agent.status();
    assert.equal(st.spools[0].queue.messages, 50);
    assert.equal(st.spools[0].defer.active, false);
    const html = await (await fetch(`${agent.url}/`)).text();
    assert.match(html, /<h2>exim/);
    assert.doesNotMatch(html, /https?:\/\/(?!127)/, 'landing page has no external assets');
  });

  test('control API answers 403/401/400/404/200 in that order', async () => {
    const post = (body: unknown, auth?: string) =>
      fetch(`${agent!.url}/api/v1/defer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    assert.equal((await post({ mode: 'on' })).status, 401);
    assert.equal((await post({ mode: 'on' }, 'Bearer wrong')).status, 401);
    assert.equal((await post('{bad json', 'Bearer wrong')).status, 401);
    const b = `Bearer ${token}`;
    assert.equal((await post({ mode: 'sideways' }, b)).status, 400);
    assert.equal((await post({ mode: 'off' }, b)).status, 400);
    assert.equal((await post({ mode: 'off', ttl_seconds: 90000 }, b)).status, 400);
    assert.equal((await post('{bad json', b)).status, 400);
    assert.equal((await post({ mode: 'on', spool: 'nope' }, b)).status, 404);
    const big = await post({ mode: 'on', pad: 'x'.repeat(100_000) }, b);
    assert.equal(big.status, 413);
    const ok = await post({ mode: 'on', ttl_seconds: 600 }, b);
    assert.equal(ok.status, 200);
    const j = await ok.json();
    assert.equal(j.defer.active, true);
    assert.deepEqual(j.defer.reasons, ['manual']);
    const line = readFileSync(flag, 'utf8');
    assert.match(line, /^reasons=manual since=\d+ until=\d+\n$/);
    assert.equal(
      metricValue(await agent!.metrics(), 'spoolguard_override', { spool: 'exim', mode: 'on' }),
      1,
    );
    // auto: ends at once since no threshold holds
    const auto = await post({ mode: 'auto' }, b);
    assert.equal((await auto.json()).defer.active, false);
    assert.equal(existsSync(flag), false);
  });

  test('CLI defer/status talk to the API; off forces acceptance', async () => {
    const env = { SPOOL_GUARD_URL: agent!.url, SPOOL_GUARD_TOKEN: token };
    let r = await runCli(['defer', 'on', '--for', '10m'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /DEFERRING \(manual\)/);
    r = await runCli(['status'], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^exim: DEFERRING/);
    r = await runCli(['defer', 'off'], env);
    assert.equal(r.code, 2, 'off needs --for');
    r = await runCli(['defer', 'off', '--for', '1m'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(flag), false);
    r = await runCli(['defer', 'auto'], env);
    assert.equal(r.code, 0);
    r = await runCli(['status', '--url', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
  });

  test('crossing the queue threshold defers within a second; draining releases with hysteresis', async () => {
    for (let i = 0; i < 260; i++) queued.push(writeMessage(fs.dir, { split: true }));
    await waitFor('flag', () => existsSync(flag), { timeoutMs: 1000 });
    assert.match(readFileSync(flag, 'utf8'), /reasons=queue/);
    while (queued.length > 150) removeMessage(fs.dir, queued.pop()!);
    // 150 is in the hysteresis band (release at 100): stays deferred
    await waitFor('count 150', async () => (await agent!.status()).spools[0].queue.messages === 150);
    await new Promise((r) => setTimeout(r, 1200)); // past min_defer_seconds: the band, not the hold, keeps it on
    assert.equal(existsSync(flag), true, 'released inside the hysteresis band');
    while (queued.length > 90) removeMessage(fs.dir, queued.pop()!);
    await waitFor('released', () => !existsSync(flag), { timeoutMs: 3000 });
    assert.equal(
      metricValue(await agent!.metrics(), 'spoolguard_defer_transitions_total', { spool: 'exim' }),
      3,
      agent!.log(),
    );
  });

  test('restart mid-incident keeps the flag; kill -9 too; a second agent on the same flag refuses', async () => {
    for (let i = 0; i < 250; i++) queued.push(writeMessage(fs.dir, { split: true }));
    await waitFor('flag', () => existsSync(flag), { timeoutMs: 1000 });
    const before = readFileSync(flag, 'utf8');
    const second = await runCli(['run', '--config', cfg, '--web.listen-address', '127.0.0.1:0']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another spool-guard \(pid \d+/);
    await agent!.stop('SIGTERM');
    assert.equal(readFileSync(flag, 'utf8'), before, 'stop leaves the flag as it is');
    agent = await startAgent(['--config', cfg]);
    assert.equal(existsSync(flag), true);
    await agent.stop('SIGKILL');
    assert.equal(existsSync(flag), true);
    agent = await startAgent(['--config', cfg]);
    const st = await agent.status();
    assert.equal(st.spools[0].defer.active, true);
    assert.ok(st.spools[0].defer.reasons.includes('queue'));
  });

  test('a symlink planted at the flag path is replaced, its target untouched', async () => {
    while (queued.length) removeMessage(fs.dir, queued.pop()!);
    await waitFor('released', () => !existsSync(flag), { timeoutMs: 5000 });
    const target = join(work, 'victim');
    writeFileSync(target, 'precious\n');
    symlinkSync(target, flag);
    assert.equal(readlinkSync(flag), target);
    for (let i = 0; i < 320; i++) queued.push(writeMessage(fs.dir, { split: true }));
    await waitFor('flag is a regular file', () => {
      try {
        return lstatSync(flag).isFile();
      } catch {
        return false;
      }
    });
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  });

  test('bad config exits 2 naming the key', async () => {
    const bad = join(work, 'bad.yml');
    writeFileSync(
      bad,
      `spools:\n  - name: x\n    path: /tmp\n    defer: { used_bytes_ratio: 0.5 }\n    release: { used_bytes_ratio: 0.7 }\n    colour: blue\n`,
    );
    const r = await runCli(['run', '--config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /spools\[0\]\.colour: unknown key/);
    const r2 = await runCli(['check-config', '--config', bad]);
    assert.equal(r2.code, 2);
    const r3 = await runCli(['check-config', '--config', cfg]);
    assert.equal(r3.code, 0);
    assert.match(r3.stdout, /flag_file: .*run\/exim\.defer/);
  });
});
