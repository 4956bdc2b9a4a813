// The agent's peer probes against real listening Exims and a closed port.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ensureSpoolDirs } from '../../src/spool/fixture.js';
import { freeLoopbackPort, metricValue, type RunningAgent, startAgent } from '../helpers/agent.js';
import { Exim, eximAvailable } from '../helpers/exim.js';
import { isRoot } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

describe('peer probes', { skip: (!isRoot || !eximAvailable) && 'needs root and exim4' }, () => {
  const eximList: Exim[] = [];
  let agent: RunningAgent | null = null;
  const work = mkdtempSync(join(tmpdir(), 'sg-peers-'));
  chmodSync(work, 0o755); // the busy Exim (Debian-exim) reads its flag here
  after(async () => {
    await agent?.stop('SIGKILL');
    for (const e of eximList) await e.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test('peer_up is 1 for listening Exims, 0 for a closed port and for a 421 greeting; a peer going down is seen', async () => {
    const backup = await Exim.create({ name: 'peer-backup', address: '127.0.0.13', queueOnly: true });
    const retry = await Exim.create({ name: 'peer-retry', address: '127.0.0.14', queueOnly: true });
    const busy = await Exim.create({
      name: 'peer-busy',
      address: '127.0.0.15',
      queueOnly: true,
      aclKit: { flagFile: join(work, 'always') },
    });
    writeFileSync(join(work, 'always'), 'reasons=manual since=1\n');
    eximList.push(backup, retry, busy);
    await Promise.all(eximList.map((e) => e.start()));
    const closed = await freeLoopbackPort('127.0.0.16');
    const spool = join(work, 'spool');
    ensureSpoolDirs(spool);
    const cfg = join(work, 'config.yml');
    writeFileSync(
      cfg,
      `probes:
  - { name: backup, role: backup_mx, address: "${backup.listen}", interval: 1s, timeout: 2s }
  - { name: retry, role: retry_host, address: "${retry.listen}", interval: 1s, timeout: 2s }
  - { name: busy, role: backup_mx, address: "${busy.listen}", interval: 1s, timeout: 2s }
  - { name: closed, role: retry_host, address: "127.0.0.16:${closed}", interval: 1s, timeout: 2s }
spools:
  - { name: exim, path: ${spool}, flag_file: ${work}/run/exim.defer }
`,
    );
    agent = await startAgent(['--config', cfg]);
    const up = async (peer: string, role: string) =>
      metricValue(await agent!.metrics(), 'spoolguard_peer_up', { peer, role });
    await waitFor('all probed', async () => {
      const all = await Promise.all([
        up('backup', 'backup_mx'),
        up('retry', 'retry_host'),
        up('busy', 'backup_mx'),
        up('closed', 'retry_host'),
      ]);
      return all.every((v) => v !== undefined);
    });
    assert.equal(await up('backup', 'backup_mx'), 1);
    assert.equal(await up('retry', 'retry_host'), 1);
    assert.equal(await up('busy', 'backup_mx'), 0, 'a 421 greeting is not up');
    assert.equal(await up('closed', 'retry_host'), 0);
    const st = await agent.status();
    assert.equal(st.peers.find((p: { name: string }) => p.name === 'backup').up, true);
    await backup.stop();
    await waitFor('backup seen down', async () => (await up('backup', 'backup_mx')) === 0, {
      timeoutMs: 8000,
    });
    assert.match(agent.log(), /peer down.*peer=backup/);
  });
});
