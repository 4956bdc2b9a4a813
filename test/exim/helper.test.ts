// The real-Exim test helper itself: queue inspection and manipulation agree with Exim's own view.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXIM_USER, Exim, eximAvailable, eximIds, freePort, smtpSend } from '../helpers/exim.js';
import { isRoot } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

describe('test/helpers/exim.ts', { skip: !isRoot || !eximAvailable }, () => {
  let relay: Exim;
  let dest: Exim;
  before(async () => {
    const port = await freePort(['127.0.0.2', '127.0.0.3']);
    dest = await Exim.create({ name: 'dest', address: '127.0.0.3', port });
    relay = await Exim.create({
      name: 'relay',
      address: '127.0.0.2',
      port,
      queueOnly: true,
      route: { hosts: ['127.0.0.3'], port },
    });
    relay.check();
    dest.check();
    await dest.start();
    await relay.start();
  });
  after(async () => {
    await relay?.dispose();
    await dest?.dispose();
  });

  test('the spool belongs to the Exim user and Exim runs as it', () => {
    assert.equal(statSync(relay.spool).uid, eximIds!.uid);
    const pid = relay.daemonPid();
    assert.ok(pid);
    assert.match(
      readdirSync('/proc').includes(String(pid)) ? String(statSync(`/proc/${pid}`).uid) : '',
      /^\d+$/,
    );
    assert.equal(statSync(`/proc/${pid}`).uid, eximIds!.uid, `daemon runs as ${EXIM_USER}`);
  });

  test('SMTP and command-line submissions are counted like exim -bpc', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await smtpSend(relay.listen, { to: `u${i}@dest.test`, size: 5000 });
      assert.equal(r.accepted, true, JSON.stringify(r));
    }
    const id = relay.submit({ to: 'cli@dest.test', size: 2000 });
    assert.match(id, /^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$/);
    assert.equal(relay.bpc(), 4);
    const q = relay.bp();
    assert.equal(q.length, 4);
    assert.ok(q.some((e) => e.id === id && e.recipients.includes('cli@dest.test')));
    assert.ok(existsSync(join(relay.spool, 'input', `${id}-H`)));
  });

  test('freeze shows in -bp; thaw undoes it', () => {
    const [a, b] = relay.ids();
    relay.freeze([a, b]);
    assert.deepEqual(relay.frozenIds().sort(), [a, b].sort());
    relay.thaw([b]);
    assert.deepEqual(relay.frozenIds(), [a]);
  });

  test('remove (-Mrm) one message', () => {
    const [a] = relay.frozenIds();
    relay.remove([a]);
    assert.equal(relay.bpc(), 3);
    assert.ok(!relay.ids().includes(a));
  });

  test('deliverAll (-qff) empties the queue into the destination maildir', async () => {
    relay.deliverAll();
    await waitFor('relay queue empty', () => relay.bpc() === 0, { timeoutMs: 20_000 });
    await waitFor('3 messages in the destination maildir', () => dest.maildirCount() === 3, {
      timeoutMs: 20_000,
    });
    assert.match(relay.mainlog(), / => u1@dest\.test R=to_hosts T=smtp_t .*H=127\.0\.0\.3 \[127\.0\.0\.3\]/);
  });

  test('a destination that is down leaves retry hints; clearRetry removes them', async () => {
    await dest.stop();
    relay.submit({ to: 'later@dest.test' });
    relay.deliverAll();
    assert.equal(relay.bpc(), 1);
    assert.ok(readdirSync(join(relay.spool, 'db')).some((f) => f.startsWith('retry')));
    relay.clearRetry();
    assert.ok(!readdirSync(join(relay.spool, 'db')).some((f) => f.startsWith('retry')));
    await dest.start();
    relay.deliverAll();
    await waitFor('delivered after the restart', () => relay.bpc() === 0 && dest.maildirCount() === 4, {
      timeoutMs: 20_000,
    });
  });
});
