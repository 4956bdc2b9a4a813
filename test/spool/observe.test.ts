// Integration: the Exim spool source on a real tmpfs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { EximSpool } from '../../src/spool/exim.js';
import {
  ensureSpoolDirs,
  type FixtureMessage,
  removeMessage,
  rewriteHeader,
  writeMessage,
} from '../../src/spool/fixture.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

function findCount(spool: string): number {
  const out = execFileSync('sh', [
    '-c',
    `find ${spool}/input -maxdepth 2 -name '*-H' | awk -F/ '{n=$NF; if (length(n)==18||length(n)==25) c++} END{print c+0}'`,
  ]);
  return Number(out.toString().trim());
}

describe('Exim spool on tmpfs', { skip: !isRoot && 'needs root to mount tmpfs' }, () => {
  const mounts: Tmpfs[] = [];
  const sources: EximSpool[] = [];
  after(async () => {
    for (const s of sources) await s.stop();
    for (const m of mounts) m.dispose();
  });
  const setup = (size = '64m', nrInodes?: number) => {
    const t = mountTmpfs(size, { nrInodes });
    mounts.push(t);
    ensureSpoolDirs(t.dir);
    return t;
  };
  const start = (dir: string) => {
    const s = new EximSpool({ name: 't', path: dir, log: silentLogger });
    sources.push(s);
    s.start();
    return s;
  };

  test('first scan: flat and split, both id formats, frozen, journals, strays', async () => {
    const t = setup();
    let frozen = 0;
    let bytes = 0;
    const ms: FixtureMessage[] = [];
    for (let i = 0; i < 600; i++) {
      const fz = i % 7 === 0;
      if (fz) frozen++;
      const m = writeMessage(t.dir, {
        split: i % 2 === 0,
        format: i % 3 === 0 ? 'new' : 'old',
        frozen: fz,
        journal: i % 5 === 0,
        bodyBytes: 100 + i,
        aclValue: i % 11 === 0 ? '-frozen 123\nmulti\nline' : undefined,
      });
      ms.push(m);
    }
    bytes = Number(
      execFileSync('sh', [
        '-c',
        `find ${t.dir}/input -type f -name '*-[HDJ]' -printf '%s\\n' | awk '{s+=$1} END{print s}'`,
      ]).toString(),
    );
    // strays: a header temporary, a -D without -H, garbage, a FIFO, a symlink out of the spool, a non-split dir
    writeFileSync(join(t.dir, 'input', 'hdr.12345'), 'partial');
    writeFileSync(join(t.dir, 'input', '1aaaaa-000000-00-D'), 'orphan');
    writeFileSync(join(t.dir, 'input', 'garbage.txt'), 'x');
    execFileSync('mkfifo', [join(t.dir, 'input', 'fifo')]);
    symlinkSync('/etc/passwd', join(t.dir, 'input', 'link'));
    mkdirSync(join(t.dir, 'input', 'notsplit'));
    const s = start(t.dir);
    await waitFor('complete', () => s.observe().complete);
    const o = s.observe();
    assert.equal(o.up, true);
    assert.equal(o.fs?.fstype, 'tmpfs');
    assert.equal(o.queue?.messages, 600);
    assert.equal(o.queue?.messages, findCount(t.dir));
    assert.equal(o.queue?.frozen, frozen);
    assert.equal(o.queue?.bytes, bytes);
    assert.equal(o.strays.header_temp, 1);
    assert.equal(o.strays.data_without_header, 1);
    assert.equal(o.strays.other, 4);
    assert.ok(o.queue?.oldest && o.queue.oldest > 1_700_000_000);
  });

  test('live changes are followed within 1 s: arrivals, freeze, thaw, delivery, split dir created', async () => {
    const t = setup();
    const s = start(t.dir);
    await waitFor('listed', () => s.observe().complete);
    const ms: FixtureMessage[] = [];
    for (let i = 0; i < 200; i++)
      ms.push(writeMessage(t.dir, { split: true, format: i % 2 ? 'new' : 'old' }));
    await waitFor('200 queued', () => s.observe().queue?.messages === 200, { timeoutMs: 1000 });
    rewriteHeader(t.dir, ms[198], true);
    rewriteHeader(t.dir, ms[199], true);
    await waitFor('2 frozen', () => s.observe().queue?.frozen === 2, { timeoutMs: 1000 });
    rewriteHeader(t.dir, ms[198], false);
    await waitFor('thawed', () => s.observe().queue?.frozen === 1, { timeoutMs: 1000 });
    for (const m of ms.slice(0, 150)) removeMessage(t.dir, m);
    await waitFor('50 left', () => s.observe().queue?.messages === 50, { timeoutMs: 1000 });
    assert.equal(s.observe().queue?.frozen, 1);
    const used = s.observe().fs!.availBytes;
    writeFileSync(join(t.dir, 'big'), Buffer.alloc(4 << 20));
    writeMessage(t.dir, {}); // any change re-reads statfs
    await waitFor('statfs fresh', () => (s.observe().fs?.availBytes ?? used) < used - (3 << 20), {
      timeoutMs: 1000,
    });
  });

  test('rescan after heavy churn finds no drift; a lost event is corrected and counted', async () => {
    const t = setup('256m');
    const s = start(t.dir);
    await waitFor('listed', () => s.observe().complete);
    const live: FixtureMessage[] = [];
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 200; i++) live.push(writeMessage(t.dir, { split: i % 2 === 0 }));
      for (let i = 0; i < 150; i++) removeMessage(t.dir, live.shift()!);
      if (round % 5 === 0) await s.rescan(); // rescans race with the churn
    }
    await waitFor('caught up', () => s.observe().queue?.messages === live.length);
    await s.rescan();
    assert.equal(s.stats.lastDrift, 0);
    assert.equal(s.observe().queue?.messages, findCount(t.dir));
    // simulate a lost event: change the disk behind the watch's back (watch closed on one dir)
    const w = (s as unknown as { watchers: Map<string, { close(): void }> }).watchers;
    w.get('')!.close();
    w.delete('');
    const extra = [writeMessage(t.dir, {}), writeMessage(t.dir, {})];
    await s.rescan();
    assert.equal(s.stats.lastDrift, 2);
    assert.equal(s.observe().queue?.messages, live.length + extra.length);
  });

  test('unmount and remount: up goes 0, queue absent, then correct again', async () => {
    const t = setup();
    const s = start(t.dir);
    for (let i = 0; i < 30; i++) writeMessage(t.dir, {});
    await waitFor('30', () => s.observe().queue?.messages === 30);
    t.unmount();
    s.tick();
    await waitFor('down', () => !s.observe().up);
    assert.equal(s.observe().queue, null);
    t.remount();
    ensureSpoolDirs(t.dir);
    for (let i = 0; i < 5; i++) writeMessage(t.dir, {});
    s.tick();
    await waitFor('up again with 5', () => s.observe().up && s.observe().queue?.messages === 5);
  });

  test('a missing spool is reported; a spool without input/ yet is an empty queue, followed when input/ appears', async () => {
    const t = setup();
    const s = start(join(t.dir, 'nonexistent'));
    await waitFor('down', () => s.observe().error !== null && s.observe().error !== 'not started');
    assert.equal(s.observe().up, false);
    assert.match(s.observe().error ?? '', /missing/);
    const fresh = join(t.dir, 'fresh'); // a freshly mounted spool: Exim makes input/ with the first message
    mkdirSync(fresh);
    const s2 = start(fresh);
    await waitFor('up and empty', () => s2.observe().up && s2.observe().queue?.messages === 0);
    assert.equal(s2.observe().listed, true);
    ensureSpoolDirs(fresh);
    writeMessage(fresh, {});
    await waitFor('first message seen without a tick', () => s2.observe().queue?.messages === 1, {
      timeoutMs: 1000,
    });
    rmSync(fresh, { recursive: true });
    s2.tick();
    await waitFor('down', () => !s2.observe().up);
  });
});
