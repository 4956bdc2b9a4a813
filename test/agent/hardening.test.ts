// Hardening: least privilege, config reload, hostile and broken spools.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ensureSpoolDirs,
  type FixtureMessage,
  removeMessage,
  writeMessage,
} from '../../src/spool/fixture.js';
import { CLI, freeLoopbackPort, metricValue, type RunningAgent, startAgent } from '../helpers/agent.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const USER = 'sg-test-agent';

function eximIds(): { uid: number; gid: number } | null {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'Debian-exim']).toString()),
      gid: Number(execFileSync('id', ['-g', 'Debian-exim']).toString()),
    };
  } catch {
    return null;
  }
}

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      chownTree(p, uid, gid);
      chmodSync(p, 0o750);
    } else if (e.isFile()) {
      chownSync(p, uid, gid);
      chmodSync(p, 0o640);
    }
  }
}

describe('hardening', { skip: !isRoot && 'needs root (tmpfs, users)' }, () => {
  const mounts: Tmpfs[] = [];
  const agents: RunningAgent[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const a of agents) await a.stop('SIGKILL');
    for (const m of mounts) m.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const scratch = () => {
    const d = mkdtempSync(join(tmpdir(), 'sg-hard-'));
    chmodSync(d, 0o755);
    dirs.push(d);
    return d;
  };

  test('runs as an unprivileged user in the Exim group: reads a 0750/0640 spool, writes only its flag directory', {
    skip: !eximIds() && 'no Debian-exim user',
  }, async () => {
    const ex = eximIds()!;
    try {
      execFileSync('id', [USER], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', [
        '--system',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        '--groups',
        'Debian-exim',
        USER,
      ]);
    }
    const uid = Number(execFileSync('id', ['-u', USER]).toString());
    const gid = Number(execFileSync('id', ['-g', USER]).toString());
    const fs = mountTmpfs('16m', { mode: '0750' });
    mounts.push(fs);
    ensureSpoolDirs(fs.dir);
    const ms: FixtureMessage[] = [];
    for (let i = 0; i < 40; i++) ms.push(writeMessage(fs.dir, { split: i % 2 === 0, frozen: i < 4 }));
    chownTree(fs.dir, ex.uid, ex.gid);
    const work = scratch();
    const run = join(work, 'run');
    mkdirSync(run, { mode: 0o755 });
    chownSync(run, uid, gid);
    const cfg = join(work, 'config.yml');
    writeFileSync(
      cfg,
      `spools:\n  - name: exim\n    path: ${fs.dir}\n    flag_file: ${run}/exim.defer\n    defer: { queue_messages: 50, time_to_full_seconds: null }\n    release: { queue_messages: 10 }\n    min_defer_seconds: 0\n`,
    );
    chmodSync(cfg, 0o644);
    const port = await freeLoopbackPort();
    const { spawn } = await import('node:child_process');
    const proc = spawn(
      'setpriv',
      [
        '--reuid',
        String(uid),
        '--regid',
        String(gid),
        '--init-groups',
        process.execPath,
        CLI,
        'run',
        '--config',
        cfg,
        '--web.listen-address',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    proc.stderr.on('data', (d) => (log += d));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(`ready\n${log}`, async () => (await fetch(`${url}/readyz`)).status === 200, {
        timeoutMs: 15000,
      });
      await waitFor(
        'complete',
        async () => (await (await fetch(`${url}/api/v1/status`)).json()).spools[0].complete,
      );
      const st = await (await fetch(`${url}/api/v1/status`)).json();
      assert.equal(st.spools[0].queue.messages, 40);
      assert.equal(st.spools[0].queue.frozen, 4);
      assert.doesNotMatch(log, /running as root/);
      for (let i = 0; i < 15; i++) ms.push(writeMessage(fs.dir, { split: true }));
      chownTree(fs.dir, ex.uid, ex.gid);
      await waitFor('flag written by the unprivileged agent', () => existsSync(join(run, 'exim.defer')), {
        timeoutMs: 2000,
      });
      const owner = Number(execFileSync('stat', ['-c', '%u', join(run, 'exim.defer')]).toString());
      assert.equal(owner, uid);
      // it cannot touch mail: the spool is not writable for it
      assert.throws(() =>
        execFileSync(
          'setpriv',
          [
            '--reuid',
            String(uid),
            '--regid',
            String(gid),
            '--init-groups',
            'rm',
            '-f',
            join(fs.dir, 'input', `${ms[1].id}-H`),
          ],
          { stdio: 'ignore' },
        ),
      );
    } finally {
      proc.kill('SIGKILL');
    }
  });

  test('config reload: SIGHUP and file changes apply; an invalid file or dropping a deferring spool is refused', async () => {
    const fs = mountTmpfs('16m');
    mounts.push(fs);
    ensureSpoolDirs(fs.dir);
    const work = scratch();
    const cfg = join(work, 'config.yml');
    const base = (q: number, extra = '') =>
      `spools:\n  - name: exim\n    path: ${fs.dir}\n    flag_file: run/exim.defer\n    defer: { queue_messages: ${q}, time_to_full_seconds: null }\n    min_defer_seconds: 0\n${extra}`;
    writeFileSync(cfg, base(100));
    const a = await startAgent(['--config', cfg]);
    agents.push(a);
    const thr = async () =>
      metricValue(await a.metrics(), 'spoolguard_defer_threshold_messages', { spool: 'exim', edge: 'enter' });
    assert.equal(await thr(), 100);
    writeFileSync(cfg, base(7));
    await waitFor('file change applied', async () => (await thr()) === 7, { timeoutMs: 5000 });
    assert.equal(metricValue(await a.metrics(), 'spoolguard_config_last_reload_successful'), 1);
    writeFileSync(cfg, base(9) + '    colour: blue\n');
    a.proc.kill('SIGHUP');
    await waitFor(
      'refused',
      async () => metricValue(await a.metrics(), 'spoolguard_config_last_reload_successful') === 0,
      { timeoutMs: 5000 },
    );
    assert.equal(await thr(), 7, 'the old config stays in force');
    assert.match(a.log(), /config reload refused.*spools\[0\]\.colour: unknown key/);
    // defer, then try to drop the spool
    for (let i = 0; i < 8; i++) writeMessage(fs.dir, {});
    await waitFor('deferring', () => existsSync(join(work, 'run', 'exim.defer')), { timeoutMs: 2000 });
    const other = mountTmpfs('4m');
    mounts.push(other);
    ensureSpoolDirs(other.dir);
    writeFileSync(cfg, `spools:\n  - name: other\n    path: ${other.dir}\n    flag_file: run/other.defer\n`);
    a.proc.kill('SIGHUP');
    await waitFor('refused drop', () => /exim is deferring and cannot be dropped/.test(a.log()), {
      timeoutMs: 5000,
    });
    const st = await a.status();
    assert.deepEqual(
      st.spools.map((s: { name: string }) => s.name),
      ['exim'],
    );
  });

  test('hostile spool entries: sockets, device nodes, FIFOs named like headers, 255-byte names, unreadable headers, vanishing files', async () => {
    const fs = mountTmpfs('16m');
    mounts.push(fs);
    ensureSpoolDirs(fs.dir);
    const input = join(fs.dir, 'input');
    for (let i = 0; i < 10; i++) writeMessage(fs.dir, {});
    const sock = createServer().listen(join(input, 'sock'));
    execFileSync('mknod', [join(input, 'null-dev'), 'c', '1', '3']);
    execFileSync('mkfifo', [join(input, '1aaaaa-bbbbbb-cc-H')]); // a FIFO with a header's name: counted like exim -bpc, never opened blocking
    writeFileSync(join(input, 'x'.repeat(255)), 'long');
    symlinkSync('/etc/shadow', join(input, '1aaaaa-bbbbbb-dd-H'));
    const work = scratch();
    const cfg = join(work, 'config.yml');
    writeFileSync(
      cfg,
      `rescan: { schedule: "* * * * * *" }\nspools:\n  - name: exim\n    path: ${fs.dir}\n    flag_file: run/exim.defer\n`,
    );
    const a = await startAgent(['--config', cfg]);
    agents.push(a);
    try {
      await waitFor('complete', async () => (await a.status()).spools[0].complete);
      const st = (await a.status()).spools[0];
      assert.equal(st.queue.messages, 12);
      assert.equal(st.queue.unreadable_headers, 2);
      assert.ok(st.stray_files.other >= 3);
      // churn with files vanishing mid-scan (rescans every second)
      const ms: FixtureMessage[] = [];
      for (let r = 0; r < 30; r++) {
        for (let i = 0; i < 50; i++) ms.push(writeMessage(fs.dir, { split: true }));
        for (let i = 0; i < 45; i++) removeMessage(fs.dir, ms.shift()!);
        await new Promise((res) => setImmediate(res));
      }
      await waitFor(
        'count right after churn',
        async () => (await a.status()).spools[0].queue.messages === 12 + ms.length,
        { timeoutMs: 3000 },
      );
      // a split directory replaced mid-run by a file
      const sub = join(input, 'Q');
      mkdirSync(sub, { recursive: true }); // the churn above may have made it already
      writeMessage(fs.dir, { split: true });
      rmSync(sub, { recursive: true, force: true });
      writeFileSync(sub, 'not a dir');
      const m = await a.metrics();
      assert.equal(metricValue(m, 'spoolguard_spool_up', { spool: 'exim' }), 1);
      assert.equal(a.proc.exitCode, null, 'still running');
    } finally {
      sock.close();
    }
  });

  test('a spool path that becomes a symlink is refused; the flag directory removed is recreated', async () => {
    const fs = mountTmpfs('16m');
    mounts.push(fs);
    const work = scratch();
    const real = join(fs.dir, 'spool');
    mkdirSync(real);
    ensureSpoolDirs(real);
    for (let i = 0; i < 5; i++) writeMessage(real, {});
    const cfg = join(work, 'config.yml');
    writeFileSync(
      cfg,
      `spools:\n  - name: exim\n    path: ${real}\n    flag_file: run/exim.defer\n    defer: { queue_messages: 3, time_to_full_seconds: null }\n    min_defer_seconds: 0\n`,
    );
    const a = await startAgent(['--config', cfg]);
    agents.push(a);
    await waitFor('deferring', () => existsSync(join(work, 'run', 'exim.defer')), { timeoutMs: 2000 });
    rmSync(join(work, 'run'), { recursive: true });
    await waitFor('flag recreated', () => existsSync(join(work, 'run', 'exim.defer')), { timeoutMs: 3000 });
    // the spool path is swapped for a symlink to somewhere else
    const evil = join(fs.dir, 'evil');
    mkdirSync(evil);
    ensureSpoolDirs(evil);
    renameSync(real, join(fs.dir, 'moved'));
    symlinkSync(evil, real);
    await waitFor(
      'down',
      async () => metricValue(await a.metrics(), 'spoolguard_spool_up', { spool: 'exim' }) === 0,
      { timeoutMs: 3000 },
    );
    assert.match((await a.status()).spools[0].error, /symlink/);
    assert.equal(
      existsSync(join(work, 'run', 'exim.defer')),
      true,
      'an unobservable spool keeps its defer state',
    );
  });
});
