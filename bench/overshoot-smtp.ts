// Overshoot with real SMTP (issue 3): 20 sessions already open on a real primary
// Exim, each sending 1 MB messages back to back, when the enter line is crossed.
// The highest used ratio the spool reaches, with and without the MAIL-ACL
// statement of the kit; beside it the overshoot a 5 s statvfs poll (KumoMTA's
// design) and a 30 s poll (monit's default cycle) would allow at the same
// measured fill rate.   node --import tsx bench/overshoot-smtp.ts
import { chmodSync, existsSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Exim, makeMessage, SmtpClient } from '../test/helpers/exim.js';
import { startAgent } from '../test/helpers/agent.js';
import { mountTmpfs } from '../test/helpers/tmpfs.js';
import type { Row } from './lib.js';

const ENTER = 0.5;
const SESSIONS = 20;

async function one(
  withMailAcl: boolean,
): Promise<{ peak: number; rate: number; atFlag: number; refusedAtMail: number }> {
  const fs = mountTmpfs('512m');
  const work = mkdtempSync(join(tmpdir(), 'sg-over-'));
  chmodSync(work, 0o755); // Exim (Debian-exim) must be able to see the flag
  const flag = join(work, 'run', 'exim.defer');
  let exim: Exim | null = null;
  let agent: Awaited<ReturnType<typeof startAgent>> | null = null;
  try {
    exim = await Exim.create({
      name: withMailAcl ? 'over-mail' : 'over-nomail',
      address: '127.0.0.21',
      spool: fs.dir,
      queueOnly: true,
      aclKit: { flagFile: flag },
      checkSpoolSpace: '0',
      checkSpoolInodes: '0',
      kitMacros: withMailAcl ? undefined : 'SPOOL_GUARD_NO_MAIL_DEFER = yes',
    });
    await exim.start();
    const cfg = join(work, 'config.yml');
    writeFileSync(
      cfg,
      `spools:\n  - name: exim\n    path: ${fs.dir}\n    flag_file: run/exim.defer\n    defer: { used_bytes_ratio: ${ENTER}, time_to_full_seconds: null }\n    release: { used_bytes_ratio: 0.2 }\n`,
    );
    agent = await startAgent(['--config', cfg]);
    const used = () => {
      const s = statfsSync(fs.dir);
      return 1 - s.bavail / s.blocks;
    };
    const msg = makeMessage({ to: ['rcpt@remote.test'], size: 1 << 20 });
    // the sessions are open (greeted, EHLO done) before the line is crossed
    const clients = await Promise.all(
      Array.from({ length: SESSIONS }, async () => {
        const c = await SmtpClient.connect(exim!.listen, {});
        await c.command('EHLO sender.test');
        return c;
      }),
    );
    let peak = 0;
    let atFlag = -1;
    let refusedAtMail = 0;
    const samples: { t: number; u: number }[] = [];
    let stop = false;
    const t0 = performance.now();
    const sampler = (async () => {
      while (!stop) {
        const u = used();
        peak = Math.max(peak, u);
        samples.push({ t: performance.now(), u });
        if (atFlag < 0 && existsSync(flag)) atFlag = u;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await Promise.all(
      clients.map(async (c) => {
        for (;;) {
          if (used() > 0.97 || performance.now() - t0 > 60_000) return;
          const m = await c.command('MAIL FROM:<sender@test>');
          if (m.code >= 400) {
            refusedAtMail++;
            return;
          }
          const r = await c.command('RCPT TO:<rcpt@remote.test>');
          if (r.code >= 400) return;
          const d = await c.data(msg);
          if (d.code >= 400) return;
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await sampler;
    for (const c of clients) await c.quit().catch(() => {});
    // fill rate below the enter line (the rate a poller would have had to catch)
    const below = samples.filter((s) => s.u > 0.05 && s.u < ENTER);
    const rate =
      below.length > 1
        ? (below[below.length - 1].u - below[0].u) / ((below[below.length - 1].t - below[0].t) / 1000)
        : Number.NaN;
    return { peak, rate, atFlag, refusedAtMail };
  } finally {
    await agent?.stop('SIGKILL');
    await exim?.dispose();
    fs.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

export async function benchOvershootSmtp(): Promise<Row[]> {
  const withAcl = await one(true);
  const without = await one(false);
  const poll = (sec: number) => Math.min(1, ENTER + withAcl.rate * sec);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    {
      figure: `20 open sessions x 1 MB messages, enter line ${pct(ENTER)}: highest used ratio with the MAIL-ACL statement`,
      value: pct(withAcl.peak),
      baseline: `without it: ${pct(without.peak)}`,
      ratio: `overshoot ${pct(withAcl.peak - ENTER)} vs ${pct(without.peak - ENTER)}`,
    },
    {
      figure: 'used ratio when the flag appeared (event-driven); sessions refused at MAIL',
      value: `${pct(withAcl.atFlag)}; ${withAcl.refusedAtMail} of 20`,
      baseline: `measured fill rate ${pct(withAcl.rate)}/s of the tmpfs`,
      ratio: '-',
    },
    {
      figure: 'the same fill rate seen by a 5 s statvfs poll (KumoMTA) / a 30 s poll (monit), worst case',
      value: `${pct(poll(5))} / ${pct(poll(30))}`,
      baseline: `spool-guard: ${pct(withAcl.peak)}`,
      ratio: '-',
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import('./lib.js');
  process.stdout.write(table(await benchOvershootSmtp()));
}
