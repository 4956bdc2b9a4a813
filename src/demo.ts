// `spool-guard demo`: a spool it makes itself (a real 64 MiB tmpfs when run as
// root, else a temporary directory guarded on queue depth) plus a simulated
// relay: senders deliver ~200 KB messages in Exim's file pattern while the flag
// is absent and stop while it exists (the 421 at the greeting); a queue runner
// delivers (removes) messages more slowly. Defer mode engages, the queue drains,
// defer mode releases, and it starts again.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent } from './agent.js';
import { createLogger } from './log.js';
import { type FixtureMessage, ensureSpoolDirs, removeMessage, writeMessage } from './spool/fixture.js';

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'web.listen-address': { type: 'string' }, 'log.level': { type: 'string' } },
    strict: true,
  });
  const listen = values['web.listen-address'] ?? '127.0.0.1:9935';
  const root = mkdtempSync(join(tmpdir(), 'spool-guard-demo-'));
  const spool = join(root, 'spool');
  const run = join(root, 'run');
  let mounted = false;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(spool);
  if (process.getuid?.() === 0) {
    try {
      execFileSync('mount', [
        '-t',
        'tmpfs',
        '-o',
        'size=64m,nr_inodes=4096,mode=0750',
        'spool-guard-demo',
        spool,
      ]);
      mounted = true;
    } catch {}
  }
  ensureSpoolDirs(spool);
  const cfgFile = join(root, 'config.yml');
  const thresholds = mounted
    ? `    defer: { used_bytes_ratio: 0.70, used_inodes_ratio: 0.70, time_to_full_seconds: 4 }
    release: { used_bytes_ratio: 0.35, used_inodes_ratio: 0.35 }`
    : `    defer: { used_bytes_ratio: null, used_inodes_ratio: null, time_to_full_seconds: null, queue_messages: 200 }
    release: { queue_messages: 60 }`;
  writeFileSync(
    cfgFile,
    `web:
  listen_address: "${listen}"
rescan:
  schedule: "*/10 * * * * *"
spools:
  - name: demo
    path: ${spool}
    flag_file: ${run}/demo.defer
${thresholds}
    min_defer_seconds: 5
`,
  );
  const log = createLogger((values['log.level'] as 'info') ?? 'info');
  const agent = new Agent({ configFile: cfgFile, overrides: {}, log });
  await agent.start();
  const flag = join(run, 'demo.defer');
  log.info(
    `demo running: open http://${listen.startsWith(':') ? `localhost${listen}` : listen}/ (Ctrl-C stops)`,
    {
      spool,
      tmpfs: mounted,
    },
  );
  const queue: FixtureMessage[] = [];
  let refused = 0;
  const arrive = setInterval(() => {
    // senders: about 4 messages of 200 KB per 100 ms while the relay accepts
    if (existsSync(flag)) {
      refused += 4;
      return;
    }
    for (let i = 0; i < 4; i++) {
      try {
        queue.push(writeMessage(spool, { split: true, bodyBytes: 200_000, frozen: Math.random() < 0.03 }));
      } catch {
        break; // spool full: exactly what defer mode is there to prevent
      }
    }
  }, 100);
  const deliver = setInterval(() => {
    // the queue runner: 2 messages per 100 ms
    for (let i = 0; i < 2 && queue.length; i++) removeMessage(spool, queue.shift()!);
  }, 100);
  const report = setInterval(() => {
    const s = agent.guards[0].status();
    log.info('demo', {
      deferring: s.defer.active,
      reasons: s.defer.reasons.join(',') || undefined,
      queue: s.queue?.messages,
      used: s.filesystem?.used_bytes_ratio?.toFixed(2),
      refused_at_greeting: refused,
    });
  }, 2000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(arrive);
  clearInterval(deliver);
  clearInterval(report);
  await agent.stop();
  if (mounted) execFileSync('umount', ['-l', spool]);
  rmSync(root, { recursive: true, force: true });
  return 0;
}
