// The agent's queue figures against a real Exim 4.96 writing its own spool:
// count equals `exim4 -bpc`, frozen equals what `exim4 -bp` shows after `-Mf`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { EximSpool } from '../../src/spool/exim.js';
import { Exim, eximAvailable } from '../helpers/exim.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

describe('queue figures against a real Exim', {
  skip: (!isRoot || !eximAvailable) && 'needs root and exim4',
}, () => {
  let fs: Tmpfs;
  let exim: Exim;
  let src: EximSpool;
  after(async () => {
    await src?.stop();
    await exim?.dispose();
    fs?.dispose();
  });

  test('count, frozen, bytes and oldest follow Exim through submission, freeze, thaw and removal', async () => {
    fs = mountTmpfs('64m');
    exim = await Exim.create({ name: 'count', spool: fs.dir, queueOnly: true, address: '127.0.0.9' });
    // a spool with messages before the agent starts (first scan) ...
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push(exim.submit({ to: `rcpt${i}@remote.test`, size: 1000 + i * 37 }));
    src = new EximSpool({ name: 'exim', path: fs.dir, log: silentLogger });
    src.start();
    await waitFor('complete', () => src.observe().complete);
    assert.equal(src.observe().queue?.messages, exim.bpc());
    // ... and live ones after it (incremental)
    for (let i = 0; i < 15; i++)
      ids.push(exim.submit({ to: [`a${i}@remote.test`, `b${i}@remote.test`], size: 5000 }));
    await waitFor('40 queued', () => src.observe().queue?.messages === exim.bpc() && exim.bpc() === 40, {
      timeoutMs: 2000,
    });
    exim.freeze(ids.slice(0, 6));
    await waitFor('frozen as exim -bp shows', () => src.observe().queue?.frozen === exim.frozenIds().length, {
      timeoutMs: 2000,
    });
    assert.equal(exim.frozenIds().length, 6);
    exim.thaw(ids.slice(0, 2));
    await waitFor('thawed', () => src.observe().queue?.frozen === 4 && exim.frozenIds().length === 4, {
      timeoutMs: 2000,
    });
    exim.remove(ids.slice(10, 20));
    await waitFor('removed', () => src.observe().queue?.messages === 30 && exim.bpc() === 30, {
      timeoutMs: 2000,
    });
    const bytes = Number(
      execFileSync('sh', [
        '-c',
        `find ${fs.dir}/input -type f -name '*-[HDJ]' -printf '%s\\n' | awk '{s+=$1} END{print s+0}'`,
      ]).toString(),
    );
    assert.equal(src.observe().queue?.bytes, bytes);
    const { idArrivalTime } = await import('../../src/spool/exim-id.js');
    const oldest = Math.min(...exim.bp().map((e) => idArrivalTime(e.id)));
    assert.equal(src.observe().queue?.oldest, oldest, 'oldest arrival decoded from the ids');
    assert.ok(Math.abs(oldest - Date.now() / 1000) < 300);
    await src.rescan();
    assert.equal(src.stats.lastDrift, 0);
  });
});
