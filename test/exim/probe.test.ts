// probeGreeting against real listening Exims (220, and 421 from the ACL kit), a closed port and
// hand-made servers (multi-line greeting, silence, garbage).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseHostPort, probeGreeting } from '../../src/guard/smtp-probe.js';
import { Exim, eximAvailable, freePort } from '../helpers/exim.js';
import { isRoot } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

describe('parseHostPort', () => {
  test('host:port, [v6]:port and bad input', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:25'), { host: '127.0.0.1', port: 25 });
    assert.deepEqual(parseHostPort('mx.example.net:2525'), { host: 'mx.example.net', port: 2525 });
    assert.deepEqual(parseHostPort('[::1]:25'), { host: '::1', port: 25 });
    for (const bad of ['', '127.0.0.1', ':25', '127.0.0.1:0', '127.0.0.1:70000', 'host:port', '[::1]']) {
      assert.equal(parseHostPort(bad), null, bad);
    }
  });
});

/** A TCP server that runs `onConn` for each connection. */
async function server(onConn: (s: net.Socket) => void): Promise<{ address: string; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

describe('probeGreeting against hand-made servers', () => {
  test('multi-line 220 greeting, QUIT is sent', async () => {
    let got = '';
    const quit = new Promise<void>((res) => {
      void server((s) => {
        s.write('220-first line\r\n220-second line\r\n220 last line\r\n');
        s.on('data', (d) => {
          got += d.toString();
          if (got.includes('QUIT\r\n')) {
            s.end('221 bye\r\n');
            res();
          }
        });
      }).then((srv) => {
        void probeGreeting(srv.address).then((r) => {
          assert.equal(r.ok, true);
          assert.equal(r.code, 220);
          assert.equal(r.line, '220-first line\n220-second line\n220 last line');
          assert.equal(r.error, undefined);
          assert.ok(r.ms >= 0 && r.ms < 1000);
          quit.then(() => srv.close());
        });
      });
    });
    await quit;
  });

  test('greeting split across packets', async () => {
    const srv = await server((s) => {
      s.write('22');
      setTimeout(() => s.write('0 ready\r'), 20);
      setTimeout(() => s.write('\n'), 40);
    });
    const r = await probeGreeting(srv.address);
    assert.equal(r.code, 220);
    assert.equal(r.ok, true);
    await srv.close();
  });

  test('a silent server: bounded by the timeout', async () => {
    const srv = await server(() => undefined);
    const r = await probeGreeting(srv.address, { timeoutMs: 300 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /timed out after 300 ms/);
    assert.ok(r.ms >= 290 && r.ms < 1500, String(r.ms));
    await srv.close();
  });

  test('not SMTP (an HTTP answer)', async () => {
    const srv = await server((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const r = await probeGreeting(srv.address);
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /not an SMTP reply/);
    await srv.close();
  });

  test('closed before the greeting', async () => {
    const srv = await server((s) => s.destroy());
    const r = await probeGreeting(srv.address);
    assert.equal(r.ok, false);
    assert.ok(r.error, 'an error');
    await srv.close();
  });

  test('ehlo option: 2xx greeting then EHLO answer', async () => {
    const srv = await server((s) => {
      s.write('220 hi\r\n');
      s.on('data', (d) => {
        if (d.toString().startsWith('EHLO probe.test')) s.write('250-hi\r\n250 PIPELINING\r\n');
      });
    });
    const r = await probeGreeting(srv.address, { ehlo: 'probe.test' });
    assert.equal(r.ok, true);
    assert.equal(r.ehloCode, 250);
    await srv.close();
  });

  test('a bad address never throws', async () => {
    const r = await probeGreeting('nonsense');
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /bad address/);
  });
});

describe('probeGreeting against real Exim', { skip: !isRoot || !eximAvailable }, () => {
  let dir: string;
  let flag: string;
  let exim: Exim;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-probe-'));
    chmodSync(dir, 0o755);
    flag = join(dir, 'exim.defer');
    exim = await Exim.create({
      name: 'probe',
      address: '127.0.0.5',
      aclKit: { flagFile: flag },
      queueOnly: true,
    });
    await exim.start();
  });
  after(async () => {
    await exim?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('220 from a listening Exim, from a chosen source address', async () => {
    const r = await probeGreeting(exim.listen, { timeoutMs: 3000, localAddress: '127.0.0.77' });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.code, 220);
    assert.match(r.line ?? '', /^220 probe\.test ESMTP Exim/);
    await waitFor('the probe in the log', () => exim.mainlog().includes('[127.0.0.77]'), { timeoutMs: 5000 });
  });

  test('EHLO against Exim', async () => {
    const r = await probeGreeting(exim.listen, { ehlo: 'probe.test' });
    assert.equal(r.ok, true);
    assert.equal(r.ehloCode, 250);
  });

  test('421 from the ACL kit while the flag exists (multi-line, reasons included)', async () => {
    writeFileSync(flag, 'reasons=bytes since=1764763200\n');
    try {
      const r = await probeGreeting(exim.listen, { timeoutMs: 3000 });
      assert.equal(r.ok, false);
      assert.equal(r.code, 421);
      assert.match(r.line ?? '', /^421[- ]4\.3\.2 /);
      assert.match(r.line ?? '', /reasons=bytes since=1764763200/);
      assert.equal(r.error, undefined);
    } finally {
      rmSync(flag, { force: true });
    }
  });

  test('a closed port: refused at once', async () => {
    const port = await freePort(['127.0.0.5']);
    const r = await probeGreeting(`127.0.0.5:${port}`, { timeoutMs: 3000 });
    assert.equal(r.ok, false);
    assert.equal(r.code, undefined);
    assert.match(r.error ?? '', /ECONNREFUSED/);
    assert.ok(r.ms < 1000);
  });

  test('100 probes in a row leave no connection behind', async () => {
    for (let i = 0; i < 100; i++) {
      const r = await probeGreeting(exim.listen, { timeoutMs: 3000 });
      assert.equal(r.code, 220);
    }
    // Each probe QUITs: Exim logs the closing of every one of them.
    await waitFor(
      'all probe sessions closed',
      () =>
        (exim.mainlog().match(/SMTP connection from \[127\.0\.0\.1\] closed by QUIT/g) ?? []).length >= 100,
      { timeoutMs: 10_000 },
    );
  });
});
