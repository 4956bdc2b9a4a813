// Foundation and reaction benchmarks: start to ready, listing, bytes/frozen,
// RSS, /metrics latency, CPU and lag under churn, drift, flag reaction time.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeMessageId, splitDirOf } from '../src/spool/exim-id.js';
import { ensureSpoolDirs, headerText, writeMessage } from '../src/spool/fixture.js';
import { metricValue, startAgent } from '../test/helpers/agent.js';
import { mountTmpfs } from '../test/helpers/tmpfs.js';
import { waitFor } from '../test/helpers/wait.js';
import { CLI } from '../test/helpers/agent.js';
import {
  cpuSeconds,
  fmtMs,
  fmtRatio,
  median,
  percentile,
  type Row,
  rssBytes,
  shell,
  timeShell,
} from './lib.js';

function fillSpool(dir: string, n: number): void {
  ensureSpoolDirs(dir);
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < n; i++)
    writeMessage(dir, { split: true, frozen: i % 50 === 0, bodyBytes: 1024, arrival: now - (n - i) });
}

function agentConfig(work: string, spool: string, extra = '', schedule = '0 0 1 1 *'): string {
  const cfg = join(work, 'config.yml');
  writeFileSync(
    cfg,
    `rescan: { schedule: "${schedule}" }
spools:
  - name: bench
    path: ${spool}
    flag_file: ${work}/run/bench.defer
${extra}`,
  );
  return cfg;
}

/** start -> /readyz 200, process start included; and the agent's own listing time and bytes-complete time. */
async function startupRun(cfg: string): Promise<{
  readyMs: number;
  listMs: number;
  completeMs: number;
  rss: number;
  pid: number;
  stop: () => void;
  url: string;
}> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const t0 = performance.now();
  const proc = spawn(
    process.execPath,
    [CLI, 'run', '--config', cfg, '--web.listen-address', `127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('ready', async () => (await fetch(`${url}/readyz`)).status === 200, {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  const readyMs = performance.now() - t0;
  await waitFor('complete', () => /msg="spool scanned"/.test(log), { timeoutMs: 60_000, intervalMs: 5 });
  const completeMs = performance.now() - t0;
  const listMs = Number(/list_ms=([\d.]+)/.exec(log)?.[1] ?? Number.NaN);
  await new Promise((r) => setTimeout(r, 3000)); // RSS settled: after the one GC that follows the first scan
  return {
    readyMs,
    listMs,
    completeMs,
    rss: rssBytes(proc.pid!),
    pid: proc.pid!,
    url,
    stop: () => proc.kill('SIGKILL'),
  };
}

export async function benchObserve(sizes: number[], runs: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of sizes) {
    const fs = mountTmpfs(`${Math.ceil((n * 12) / 1024) + 64}m`, { nrInodes: n * 3 + 1000 });
    const work = mkdtempSync(join(tmpdir(), 'sg-bench-'));
    try {
      process.stderr.write(`bench: writing ${n} messages...\n`);
      fillSpool(fs.dir, n);
      // a rescan every 5 s, so the /metrics latency below includes scrapes during rescans
      const cfg = agentConfig(work, fs.dir, '', '*/5 * * * * *');
      const findCount = timeShell(`cd ${fs.dir} && find input -name '*-H' | wc -l >/dev/null`, runs);
      const findSizes = timeShell(
        `cd ${fs.dir} && find input -type f -printf '%s\\n' | awk '{s+=$1} END{print s}' >/dev/null`,
        runs,
      );
      const nodeStart = timeShell(`${process.execPath} -e 0`, runs);
      const ready: number[] = [];
      const list: number[] = [];
      const complete: number[] = [];
      const rss: number[] = [];
      let last: Awaited<ReturnType<typeof startupRun>> | null = null;
      for (let r = 0; r < runs; r++) {
        last?.stop();
        last = await startupRun(cfg);
        ready.push(last.readyMs);
        list.push(last.listMs);
        complete.push(last.completeMs);
        rss.push(last.rss);
      }
      const a = last!;
      const m = await (await fetch(`${a.url}/metrics`)).text();
      const count = metricValue(m, 'spoolguard_queue_messages', { spool: 'bench' });
      const fc = Number(shell(`cd ${fs.dir} && find input -name '*-H' | wc -l`).trim());
      // /metrics latency at 10 scrapes/s
      const lat: number[] = [];
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now();
        await (await fetch(`${a.url}/metrics`)).text();
        lat.push(performance.now() - t0);
        await new Promise((res) => setTimeout(res, 100));
      }
      rows.push(
        {
          figure: `start to /readyz 200 at ${n} (process start included)`,
          value: fmtMs(median(ready)),
          baseline: `node -e 0: ${fmtMs(nodeStart)}`,
          ratio: fmtRatio(median(ready), nodeStart),
        },
        {
          figure: `listing (agent's own log) at ${n}`,
          value: fmtMs(median(list)),
          baseline: `find -name '*-H' | wc -l: ${fmtMs(findCount)}`,
          ratio: fmtRatio(median(list), findCount),
        },
        {
          figure: `start to bytes and frozen complete at ${n}`,
          value: fmtMs(median(complete)),
          baseline: `find -printf '%s' summed: ${fmtMs(findSizes)}`,
          ratio: fmtRatio(median(complete), findSizes),
        },
        {
          figure: `count agrees with find at ${n}`,
          value: String(count),
          baseline: String(fc),
          ratio: count === fc ? 'exact' : 'MISMATCH',
        },
        {
          figure: `RSS at ${n} messages (3 s after the first scan)`,
          value: `${(median(rss) / 2 ** 20).toFixed(0)} MB`,
          baseline: '-',
          ratio: '-',
        },
        {
          figure: `/metrics latency at ${n}, 10 scrapes/s, rescans every 5 s (p50 / p99)`,
          value: `${fmtMs(percentile(lat, 50))} / ${fmtMs(percentile(lat, 99))}`,
          baseline: `existing exporter lists every spool dir per scrape: ${fmtMs(findCount)}`,
          ratio: fmtRatio(percentile(lat, 99), findCount),
        },
      );
      a.stop();
    } finally {
      fs.dispose();
      rmSync(work, { recursive: true, force: true });
    }
  }
  return rows;
}

/** 2,000 messages/s arriving and leaving in Exim's file pattern for `seconds`: CPU, lag, drift. */
export async function benchChurn(seconds: number): Promise<Row[]> {
  const fs = mountTmpfs('512m', { nrInodes: 400_000 });
  const work = mkdtempSync(join(tmpdir(), 'sg-churn-'));
  try {
    fillSpool(fs.dir, 10_000);
    const cfg = agentConfig(work, fs.dir, '', '*/10 * * * * *');
    const a = await startAgent(['--config', cfg]);
    const pid = a.proc.pid!;
    const input = join(fs.dir, 'input');
    const now = Math.floor(Date.now() / 1000);
    let seq = 1_000_000;
    const live: { dir: string; id: string }[] = [];
    const arrive = () => {
      const id = makeMessageId(now, seq++);
      const dir = join(input, splitDirOf(id));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${id}-D`), 'x'.repeat(1000));
      writeFileSync(join(dir, `hdr.${id}`), headerText(id, { arrival: now }));
      renameSync(join(dir, `hdr.${id}`), join(dir, `${id}-H`));
      live.push({ dir, id });
    };
    const leave = () => {
      const m = live.shift();
      if (!m) return;
      unlinkSync(join(m.dir, `${m.id}-H`));
      unlinkSync(join(m.dir, `${m.id}-D`));
    };
    const c0 = cpuSeconds(pid);
    const t0 = performance.now();
    let done = 0;
    while (performance.now() - t0 < seconds * 1000) {
      const target = ((performance.now() - t0) / 1000) * 2000;
      while (done < target) {
        arrive();
        if (live.length > 2000) leave();
        done++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = ((cpuSeconds(pid) - c0) / elapsed) * 100;
    // lag: one change, then poll the status until it shows
    const lags: number[] = [];
    for (let i = 0; i < 100; i++) {
      const before = (await a.status()).spools[0].queue.messages;
      const ts = performance.now();
      arrive();
      await waitFor('seen', async () => (await a.status()).spools[0].queue.messages === before + 1, {
        timeoutMs: 5000,
        intervalMs: 1,
      });
      lags.push(performance.now() - ts);
    }
    // drift: the rescans that ran during the churn (every 10 s) against the incremental state
    const m0 = await a.metrics();
    const rescans = metricValue(m0, 'spoolguard_rescans_total', { spool: 'bench' }) ?? 0;
    const corrections = metricValue(m0, 'spoolguard_rescan_corrections_total', { spool: 'bench' }) ?? 0;
    await waitFor(
      'a rescan after the churn',
      async () =>
        (metricValue(await a.metrics(), 'spoolguard_rescans_total', { spool: 'bench' }) ?? 0) > rescans,
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    const m = await a.metrics();
    const drift = metricValue(m, 'spoolguard_rescan_drift_messages', { spool: 'bench' });
    const cnt = metricValue(m, 'spoolguard_queue_messages', { spool: 'bench' });
    const fc = Number(shell(`cd ${fs.dir} && find input -name '*-H' | wc -l`).trim());
    await a.stop('SIGTERM');
    return [
      {
        figure: `agent CPU while 2,000 msg/s arrive and leave (${seconds} s)`,
        value: `${cpu.toFixed(1)}% of one core`,
        baseline: 'target <= 25%',
        ratio: '-',
      },
      {
        figure: 'lag from a change to the status/metric (p50 / p99)',
        value: `${fmtMs(percentile(lags, 50))} / ${fmtMs(percentile(lags, 99))}`,
        baseline: 'target p99 <= 50 ms',
        ratio: '-',
      },
      {
        figure: 'count after the churn vs find',
        value: String(cnt),
        baseline: String(fc),
        ratio: cnt === fc ? 'exact' : 'MISMATCH',
      },
      {
        figure: `rescan drift after ${seconds} s of churn (corrections during it)`,
        value: `${drift} (${corrections})`,
        baseline: 'target 0',
        ratio: '-',
      },
    ];
  } finally {
    fs.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Reaction: the write that crosses the enter line -> flag present; and overshoot at 100 MB/s. */
export async function benchReaction(crossings: number): Promise<Row[]> {
  const fs = mountTmpfs('1g');
  const work = mkdtempSync(join(tmpdir(), 'sg-react-'));
  try {
    ensureSpoolDirs(fs.dir);
    const cfg = agentConfig(
      work,
      fs.dir,
      `    defer: { used_bytes_ratio: 0.5, time_to_full_seconds: null }
    release: { used_bytes_ratio: 0.4 }
    min_defer_seconds: 0
`,
    );
    const a = await startAgent(['--config', cfg]);
    const flag = join(work, 'run', 'bench.defer');
    const size = 1 << 30;
    const lat: number[] = [];
    const big = join(fs.dir, 'input', 'filler');
    for (let i = 0; i < crossings; i++) {
      writeFileSync(big, Buffer.alloc(Math.floor(size * 0.49)));
      await waitFor('released', () => !existsSync(flag), { timeoutMs: 10_000, intervalMs: 2 });
      const t0 = performance.now();
      writeFileSync(join(fs.dir, 'input', 'cross'), Buffer.alloc(Math.floor(size * 0.02)));
      const t1 = performance.now();
      await waitFor('flag', () => existsSync(flag), { timeoutMs: 10_000, intervalMs: 0.2 });
      lat.push(performance.now() - t1);
      void t0;
      unlinkSync(join(fs.dir, 'input', 'cross'));
      unlinkSync(big);
    }
    await waitFor('released', () => !existsSync(flag), { timeoutMs: 10_000 });
    // overshoot: one writer at ~100 MB/s in 1 MB chunks; used ratio when the flag appears
    const chunk = Buffer.alloc(1 << 20);
    let written = 0;
    let flagAt = -1;
    const t0 = performance.now();
    let k = 0;
    while (written < size * 0.9) {
      writeFileSync(join(fs.dir, 'input', `fill${k++}`), chunk);
      written += chunk.length;
      if (flagAt < 0 && existsSync(flag)) flagAt = written;
      const target = ((performance.now() - t0) / 1000) * 100 * 2 ** 20;
      if (written > target)
        await new Promise((r) => setTimeout(r, ((written - target) / (100 * 2 ** 20)) * 1000));
      if (flagAt >= 0 && written > flagAt + 4 * chunk.length) break;
    }
    const overshoot = flagAt / size - 0.5;
    const rate = 100 * 2 ** 20;
    await a.stop('SIGKILL');
    return [
      {
        figure: `reaction: crossing write -> flag present (p50 / p99 over ${crossings})`,
        value: `${fmtMs(percentile(lat, 50))} / ${fmtMs(percentile(lat, 99))}`,
        baseline: 'target p50 <= 10 ms, p99 <= 50 ms',
        ratio: '-',
      },
      {
        figure: 'overshoot at 100 MB/s on a 1 GiB tmpfs (used ratio at flag - enter line)',
        value: `${(overshoot * 100).toFixed(2)}% of size`,
        baseline: `5 s poll: ${(((5 * rate) / size) * 50).toFixed(1)}% avg, ${(((5 * rate) / size) * 100).toFixed(0)}% worst; 30 s poll: ${Math.min(50, ((30 * rate) / size) * 100).toFixed(0)}%+ (full)`,
        ratio: '-',
      },
    ];
  } finally {
    fs.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}
