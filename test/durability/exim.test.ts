// save/restore with a real Exim: refusal while it runs, and a full reboot cycle
// (queue, stop, save, tmpfs unmounted and remounted, restore, deliver) with
// every message arriving at a destination Exim exactly once.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runRestore, runSave } from '../../src/durability/command.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const EXIM = '/usr/sbin/exim4';
const eximAvailable = existsSync(EXIM);
const SRC_ADDR = '127.0.0.61';
const DST_ADDR = '127.0.0.62';

function idsOf(user: string): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })),
    gid: Number(execFileSync('id', ['-g', user], { encoding: 'utf8' })),
  };
}

async function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

interface Instance {
  cfg: string;
  spool: string;
  pidFile: string;
  start(): Promise<number>;
  stop(): Promise<void>;
  exim(args: string[], input?: string): string;
}

function instance(
  dir: string,
  name: string,
  o: { spool: string; addr: string; port: number; next?: { addr: string; port: number } },
): Instance {
  const log = join(dir, `${name}-log`);
  mkdirSync(log, { recursive: true });
  const ex = idsOf('Debian-exim');
  chownSync(log, ex.uid, ex.gid);
  const pidFile = join(log, 'exim.pid');
  const cfg = join(dir, `${name}.conf`);
  writeFileSync(
    cfg,
    `spool_directory = ${o.spool}
log_file_path = ${log}/%slog
pid_file_path = ${pidFile}
primary_hostname = ${name}.test
local_interfaces = ${o.addr}
daemon_smtp_ports = ${o.port}
queue_only = true
split_spool_directory = true
keep_environment =
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
begin routers
out:
  driver = manualroute
  route_list = * ${o.next?.addr ?? '127.0.0.1'}
  transport = smtp_out
  self = send
begin transports
smtp_out:
  driver = smtp
  port = ${o.next?.port ?? 25}
  hosts_avoid_tls = *
  allow_localhost
begin retry
* * F,1m,10s
`,
    { mode: 0o644 },
  );
  const exim = (args: string[], input?: string) =>
    execFileSync(EXIM, ['-C', cfg, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  let pid = 0;
  return {
    cfg,
    spool: o.spool,
    pidFile,
    exim,
    async start() {
      if (existsSync(pidFile)) rmSync(pidFile);
      exim(['-bd']);
      pid = await waitFor('exim pid file', () => {
        const p = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
        return p > 0 && existsSync(`/proc/${p}`) ? p : 0;
      });
      return pid;
    },
    async stop() {
      if (!pid) return;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
      const p = pid;
      await waitFor('exim to exit', () => !existsSync(`/proc/${p}`), { timeoutMs: 15_000 });
      pid = 0;
    },
  };
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) } };
}

describe('with a real Exim', {
  skip: (!isRoot && 'needs root') || (!eximAvailable && 'exim4 not installed'),
}, () => {
  let work: string;
  let srcFs: Tmpfs;
  let dstFs: Tmpfs;
  const running: Instance[] = [];

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'sg-dur-exim-'));
    execFileSync('chmod', ['755', work]);
    srcFs = mountTmpfs('64m');
    dstFs = mountTmpfs('64m');
    const ex = idsOf('Debian-exim');
    for (const d of [srcFs.dir, dstFs.dir]) chownSync(d, ex.uid, ex.gid);
  });
  after(async () => {
    for (const i of running) await i.stop().catch(() => {});
    srcFs?.dispose();
    dstFs?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('refuses while the Exim daemon runs on the spool, naming it; --force overrides', async () => {
    const port = await freePort(SRC_ADDR);
    const src = instance(work, 'refuse', { spool: srcFs.dir, addr: SRC_ADDR, port });
    running.push(src);
    src.exim(['-odq', '-f', 'a@x.test', 'b@y.test'], 'Subject: one\n\nbody\n');
    const pid = await src.start();
    const backup = join(work, 'refuse-backup');
    const c = capture();
    assert.equal(await runSave(['--spool', srcFs.dir, '--to', backup, '--quiet'], c.io), 1);
    assert.match(c.err.join('\n'), new RegExp(`exim4 \\(pid ${pid}\\) is using the spool`));
    assert.equal(existsSync(join(backup, 'current')), false);
    const f = capture();
    assert.equal(await runSave(['--spool', srcFs.dir, '--to', backup, '--quiet', '--force'], f.io), 0);
    const r = capture();
    assert.equal(await runRestore(['--from', backup, '--spool', srcFs.dir, '--quiet'], r.io), 1);
    assert.match(r.err.join('\n'), new RegExp(`exim4 \\(pid ${pid}\\)`));
    await src.stop();
    // empty the spool for the next test
    for (const n of readdirSync(srcFs.dir)) rmSync(join(srcFs.dir, n), { recursive: true, force: true });
  });

  test('queue, stop, save, reboot the tmpfs, restore, deliver: every message arrives exactly once', async () => {
    const N = 60;
    const dstPort = await freePort(DST_ADDR);
    const srcPort = await freePort(SRC_ADDR);
    const dst = instance(work, 'dst', { spool: dstFs.dir, addr: DST_ADDR, port: dstPort });
    const src = instance(work, 'src', {
      spool: srcFs.dir,
      addr: SRC_ADDR,
      port: srcPort,
      next: { addr: DST_ADDR, port: dstPort },
    });
    running.push(dst, src);
    await src.start();
    for (let i = 0; i < N; i++) {
      src.exim(
        ['-odq', '-f', 'sender@x.test', `rcpt${i % 3}@y.test`],
        `Subject: m${i}\nMessage-ID: <sg-dur-${i}@x.test>\n\n${'line\n'.repeat(1 + i * 50)}`,
      );
    }
    assert.equal(src.exim(['-bpc']).trim(), String(N));
    await src.stop();

    const backup = join(work, 'backup');
    const s = capture();
    assert.equal(await runSave(['--spool', srcFs.dir, '--to', backup, '--quiet'], s.io), 0, s.err.join('\n'));
    assert.match(s.out[0], new RegExp(`saved ${N} messages`));

    // the reboot: the RAM disk comes back empty
    srcFs.unmount();
    srcFs.remount();
    assert.deepEqual(readdirSync(srcFs.dir), []);
    const r = capture();
    assert.equal(
      await runRestore(['--from', backup, '--spool', srcFs.dir, '--quiet'], r.io),
      0,
      r.err.join('\n'),
    );
    assert.match(r.out[0], new RegExp(`restored ${N} of ${N}`));
    assert.equal(src.exim(['-bpc']).trim(), String(N));

    await dst.start();
    // a queue run delivers everything to the destination
    const q = spawnSync(EXIM, ['-C', src.cfg, '-qff'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(q.status, 0, q.stderr);
    await waitFor('source queue empty', () => src.exim(['-bpc']).trim() === '0', { timeoutMs: 30_000 });
    const got = await waitFor(
      `${N} messages at the destination`,
      () => {
        const ids: string[] = [];
        const walk = (d: string) => {
          for (const n of readdirSync(d, { withFileTypes: true })) {
            const p = join(d, n.name);
            if (n.isDirectory()) walk(p);
            else if (n.name.endsWith('-H')) {
              const m = /Message-ID: <(sg-dur-\d+)@x\.test>/i.exec(readFileSync(p, 'latin1'));
              if (m) ids.push(m[1]);
            }
          }
        };
        walk(join(dstFs.dir, 'input'));
        return ids.length >= N ? ids : null;
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(got.length, N, 'no duplicates');
    assert.equal(new Set(got).size, N, 'every message exactly once');
    // a crash now (no save) must not bring them back
    const again = capture();
    assert.equal(await runRestore(['--from', backup, '--spool', srcFs.dir, '--quiet'], again.io), 0);
    assert.match(again.out[0], /already restored/);
    assert.equal(src.exim(['-bpc']).trim(), '0');
    await dst.stop();
  });
});
