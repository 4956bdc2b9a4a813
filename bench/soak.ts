// Soak and fault run (issue 6): churn at 2,000 messages/s arriving and leaving,
// 20 scrapes/s and 1 status call/s against a real agent on a real tmpfs, with
// the queue swinging across the defer thresholds; kill -9 of the agent at random
// moments; the tmpfs unmounted and remounted; malformed requests to every
// endpoint. Prints "load held, faults survived, bad inputs tried, nothing lost".
//   node --import tsx bench/soak.ts [seconds=600] [kills=20] [seed]
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeMessageId, splitDirOf } from '../src/spool/exim-id.js';
import { ensureSpoolDirs, headerText, writeMessage } from '../src/spool/fixture.js';
import { metricValue, type RunningAgent, startAgent } from '../test/helpers/agent.js';
import { mountTmpfs } from '../test/helpers/tmpfs.js';
import { waitFor } from '../test/helpers/wait.js';
import { median, percentile, rssBytes } from './lib.js';

export interface SoakOptions {
  seconds: number;
  kills: number;
  seed: number;
  base: number;
  unmount: boolean;
  malformedPerEndpoint: number;
  log?: (s: string) => void;
}

export interface SoakReport {
  seconds: number;
  arrived: number;
  departed: number;
  scrapes: number;
  statusCalls: number;
  scrapeErrors: number;
  crossings: number;
  crossingsDeferred: number;
  deferLagP99Ms: number;
  rssStartMb: number;
  rssEndMb: number;
  rssGrowthMb: number;
  rssPeakMb: number;
  /** old-generation heap in use right after each major GC of the undisturbed half (MB) */
  liveHeapMb: number[];
  /** last minus first of liveHeapMb (NaN with fewer than two major GCs) */
  liveHeapGrowthMb: number;
  drift: number;
  countMismatch: number;
  kills: number;
  killFlagChanged: number;
  restartReadyMs: number[];
  restartStateMismatch: number;
  unmount: { upWentZero: boolean; upCameBack: boolean; countCorrect: boolean } | null;
  malformed: {
    sent: number;
    non4xx: number;
    crashed: boolean;
    rssBeforeMb: number;
    rssAfterMb: number;
  } | null;
  problems: string[];
}

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The RSS floors (minimum) of the first and the last few seconds of the samples, and the peak. */
export function rssFloors(samples: { t: number; mb: number }[]) {
  if (samples.length === 0)
    return { rssStartMb: Number.NaN, rssEndMb: Number.NaN, rssGrowthMb: Number.NaN, rssPeakMb: Number.NaN };
  const first = samples[0].t;
  const last = samples[samples.length - 1].t;
  const span = Math.max(2, (last - first) / 10);
  const floor = (from: number, to: number) =>
    Math.min(...samples.filter((x) => x.t >= from && x.t <= to).map((x) => x.mb));
  const start = floor(first, first + span);
  const end = floor(last - span, last);
  return {
    rssStartMb: start,
    rssEndMb: end,
    rssGrowthMb: end - start,
    rssPeakMb: Math.max(...samples.map((x) => x.mb)),
  };
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? ((s: string) => process.stderr.write(`soak: ${s}\n`));
  const rand = rng(o.seed);
  log(`seed ${o.seed}, ${o.seconds} s, ${o.kills} kills`);
  const fs = mountTmpfs('1g', { nrInodes: 500_000 });
  const work = mkdtempSync(join(tmpdir(), 'sg-soak-'));
  const flag = join(work, 'run', 'soak.defer');
  const HIGH = o.base + 3000;
  const LOW = o.base + 1000;
  const cfg = join(work, 'config.yml');
  writeFileSync(
    cfg,
    `rescan: { schedule: "*/15 * * * * *" }
spools:
  - name: soak
    path: ${fs.dir}
    flag_file: run/soak.defer
    defer: { queue_messages: ${HIGH}, used_bytes_ratio: 0.9, time_to_full_seconds: null }
    release: { queue_messages: ${LOW}, used_bytes_ratio: 0.8 }
    min_defer_seconds: 1
`,
  );
  const r: SoakReport = {
    seconds: o.seconds,
    arrived: 0,
    departed: 0,
    scrapes: 0,
    statusCalls: 0,
    scrapeErrors: 0,
    crossings: 0,
    crossingsDeferred: 0,
    deferLagP99Ms: 0,
    rssStartMb: 0,
    rssEndMb: 0,
    rssGrowthMb: 0,
    rssPeakMb: 0,
    liveHeapMb: [],
    liveHeapGrowthMb: Number.NaN,
    drift: 0,
    countMismatch: 0,
    kills: 0,
    killFlagChanged: 0,
    restartReadyMs: [],
    restartStateMismatch: 0,
    unmount: null,
    malformed: null,
    problems: [],
  };
  let agent: RunningAgent | null = null;
  let stopLoad = false;
  // the live heap: the old generation in use at the first scrape after each major GC (a leak
  // raises it; garbage promoted between two major GCs, which RSS over a short run cannot
  // tell from a leak, does not)
  let heapWatch: ((metrics: string) => void) | null = null;
  let majors = -1;
  const watchHeap = (text: string) => {
    const n = metricValue(text, 'nodejs_gc_duration_seconds_count', { kind: 'major' }) ?? 0;
    if (majors >= 0 && n > majors) {
      const used = (space: string) => metricValue(text, 'nodejs_heap_space_size_used_bytes', { space }) ?? 0;
      r.liveHeapMb.push((used('old') + used('large_object')) / 2 ** 20);
    }
    majors = n;
  };
  try {
    ensureSpoolDirs(fs.dir);
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < o.base; i++) writeMessage(fs.dir, { split: true, arrival: now - 3600 });
    agent = await startAgent(['--config', cfg]);
    let paused = false;
    let restarting = false;
    let seq = 10_000_000;
    const live: { dir: string; id: string }[] = [];
    const input = () => join(fs.dir, 'input');
    const arrive = () => {
      const id = makeMessageId(now, seq++);
      const dir = join(input(), splitDirOf(id));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${id}-D`), 'x'.repeat(2000));
      writeFileSync(join(dir, `hdr.${id}`), headerText(id, { arrival: now }));
      renameSync(join(dir, `hdr.${id}`), join(dir, `${id}-H`));
      live.push({ dir, id });
      r.arrived++;
    };
    const depart = () => {
      const m = live.shift();
      if (!m) return;
      unlinkSync(join(m.dir, `${m.id}-H`));
      unlinkSync(join(m.dir, `${m.id}-D`));
      r.departed++;
    };
    // the queue swings between base and base+4000 with a 16 s period: it crosses both lines
    const target = (t: number) => Math.round(2000 + 2000 * Math.sin((2 * Math.PI * t) / 16));
    const t0 = performance.now();
    const load = (async () => {
      let done = 0;
      while (!stopLoad) {
        if (paused) {
          await sleep(20);
          continue;
        }
        const t = (performance.now() - t0) / 1000;
        const want = t * 2000;
        while (done < want) {
          arrive();
          done++;
          if (live.length > target(t)) depart();
          if (live.length > target(t)) depart();
        }
        await sleep(5);
      }
    })();
    // scrapes and status calls, against whichever agent is current
    const scrapeLoop = (async () => {
      while (!stopLoad) {
        const a = agent;
        if (a && a.proc.exitCode === null && a.proc.signalCode === null) {
          fetch(`${a.url}/metrics`)
            .then((x) => x.text())
            .then((text) => {
              r.scrapes++;
              if (heapWatch && a === agent) heapWatch(text);
            })
            .catch(() => r.scrapeErrors++);
        }
        await sleep(50);
      }
    })();
    const statusLoop = (async () => {
      while (!stopLoad) {
        agent?.status().then(
          () => r.statusCalls++,
          () => r.scrapeErrors++,
        );
        await sleep(1000);
      }
    })();
    // the crossing watcher: every time our own count crosses the enter line, the flag must follow
    const lags: number[] = [];
    let above = false;
    let crossedAt = 0;
    const watcher = (async () => {
      while (!stopLoad) {
        const total = o.base + live.length;
        if (!paused && !restarting && !above && total >= HIGH) {
          above = true;
          crossedAt = performance.now();
          r.crossings++;
        }
        if (above && existsSync(flag) && crossedAt > 0) {
          lags.push(performance.now() - crossedAt);
          r.crossingsDeferred++;
          crossedAt = 0;
        }
        if (above && total < LOW - 200) {
          above = false;
          if (crossedAt > 0)
            r.problems.push(`a crossing at ${((crossedAt - t0) / 1000).toFixed(1)} s was never deferred`);
          crossedAt = 0;
        }
        await sleep(2);
      }
    })();
    await sleep(15_000); // warm-up
    heapWatch = watchHeap;
    // the first half is undisturbed (RSS must stay flat); the faults come in the second half.
    // RSS is sampled every 200 ms: a leak raises its floor, while a rescan's worker thread
    // (a whole isolate, gone when the scan ends) only makes a short peak, so the floors of
    // the first and last few seconds of the undisturbed window are compared.
    const half = o.seconds / 2;
    const rss: { t: number; mb: number }[] = [];
    let rssTaken = false;
    const sampler = (async () => {
      while (!rssTaken) {
        const a = agent;
        if (a && a.proc.exitCode === null)
          rss.push({ t: (performance.now() - t0) / 1000, mb: rssBytes(a.proc.pid!) / 2 ** 20 });
        await sleep(200);
      }
    })();
    const killAt = Array.from({ length: o.kills }, () => half + 2 + rand() * (half - 6)).sort(
      (a, b) => a - b,
    );
    const unmountAt = o.unmount ? half + (half - 4) * rand() : -1;
    let unmounted = false;
    while ((performance.now() - t0) / 1000 < o.seconds) {
      const t = (performance.now() - t0) / 1000;
      if (!rssTaken && t >= half) {
        rssTaken = true;
        heapWatch = null;
        await sampler;
        Object.assign(r, rssFloors(rss));
      }
      if (killAt.length && t >= killAt[0]) {
        killAt.shift();
        restarting = true;
        const before = existsSync(flag);
        const beforeLine = before ? readFileSync(flag, 'utf8') : null;
        await agent.stop('SIGKILL');
        r.kills++;
        if (existsSync(flag) !== before) r.killFlagChanged++;
        const ts = performance.now();
        paused = true; // compare the restarted agent's state with a still spool
        agent = await startAgent(['--config', cfg]);
        r.restartReadyMs.push(performance.now() - ts);
        const st = (await agent.status()).spools[0];
        const total = o.base + live.length;
        // it takes up the state it found: still deferring unless the release conditions hold,
        // still accepting unless an enter condition holds
        const wrong = before ? !st.defer.active && total > LOW : st.defer.active && total < HIGH;
        if (wrong) {
          r.restartStateMismatch++;
          r.problems.push(
            `restarted agent: defer ${st.defer.active} with ${total} queued (was ${before}, ${beforeLine?.trim()})`,
          );
        }
        paused = false;
        restarting = false;
      }
      if (!unmounted && unmountAt > 0 && t >= unmountAt) {
        unmounted = true;
        paused = true;
        await sleep(100);
        fs.unmount();
        const a = agent;
        const upZero = await waitFor(
          'up 0',
          async () => metricValue(await a.metrics(), 'spoolguard_spool_up', { spool: 'soak' }) === 0,
          { timeoutMs: 5000 },
        ).then(
          () => true,
          () => false,
        );
        fs.remount();
        ensureSpoolDirs(fs.dir);
        live.length = 0;
        for (let i = 0; i < o.base; i++) writeMessage(fs.dir, { split: true, arrival: now - 3600 });
        const upOne = await waitFor(
          'up 1',
          async () => metricValue(await a.metrics(), 'spoolguard_spool_up', { spool: 'soak' }) === 1,
          { timeoutMs: 10_000 },
        ).then(
          () => true,
          () => false,
        );
        const correct = await waitFor(
          'count',
          async () =>
            metricValue(await a.metrics(), 'spoolguard_queue_messages', { spool: 'soak' }) === o.base,
          { timeoutMs: 10_000 },
        ).then(
          () => true,
          () => false,
        );
        r.unmount = { upWentZero: upZero, upCameBack: upOne, countCorrect: correct };
        above = false;
        crossedAt = 0;
        paused = false;
      }
      await sleep(50);
    }
    // quiesce and check the figures
    paused = true;
    await sleep(500);
    const m = await agent.metrics();
    const count = metricValue(m, 'spoolguard_queue_messages', { spool: 'soak' });
    if (count !== o.base + live.length) r.countMismatch = Math.abs((count ?? 0) - (o.base + live.length));
    const rescans = metricValue(m, 'spoolguard_rescans_total', { spool: 'soak' }) ?? 0;
    const a = agent;
    await waitFor(
      'a rescan at rest',
      async () =>
        (metricValue(await a.metrics(), 'spoolguard_rescans_total', { spool: 'soak' }) ?? 0) > rescans,
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    r.drift = metricValue(await agent.metrics(), 'spoolguard_rescan_drift_messages', { spool: 'soak' }) ?? -1;
    if (!rssTaken) {
      rssTaken = true;
      heapWatch = null;
      await sampler;
      Object.assign(r, rssFloors(rss));
    }
    if (r.liveHeapMb.length >= 2)
      r.liveHeapGrowthMb = r.liveHeapMb[r.liveHeapMb.length - 1] - r.liveHeapMb[0];
    r.deferLagP99Ms = lags.length ? percentile(lags, 99) : Number.NaN;
    stopLoad = true;
    await Promise.all([load, scrapeLoop, statusLoop, watcher]);
    if (o.malformedPerEndpoint > 0) r.malformed = await malformed(agent, o.malformedPerEndpoint);
  } finally {
    stopLoad = true;
    await agent?.stop('SIGKILL');
    fs.dispose();
    rmSync(work, { recursive: true, force: true });
  }
  return r;
}

/** Bad JSON, huge bodies, bad methods, slow clients: to every endpoint. */
async function malformed(a: RunningAgent, n: number): Promise<NonNullable<SoakReport['malformed']>> {
  const before = rssBytes(a.proc.pid!) / 2 ** 20;
  const paths = ['/', '/metrics', '/healthz', '/readyz', '/api/v1/status', '/api/v1/defer', '/nope'];
  let sent = 0;
  let non4xx = 0;
  const check = (status: number, ok: number[]) => {
    sent++;
    if (!ok.includes(status)) non4xx++;
  };
  const big = 'x'.repeat(1 << 20);
  for (const p of paths) {
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const kind = i % 4;
      const req =
        kind === 0
          ? fetch(a.url + p, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: '{"mode": on',
            })
          : kind === 1
            ? fetch(a.url + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big })
            : kind === 2
              ? fetch(a.url + p, { method: ['PUT', 'DELETE', 'PATCH'][i % 3] })
              : fetch(a.url + p, {
                  method: 'POST',
                  headers: { 'content-type': 'text/plain' },
                  body: 'mode=on',
                });
      jobs.push(
        req.then(
          (res) => {
            void res.arrayBuffer().catch(() => {});
            check(res.status, [400, 401, 403, 404, 405, 413, 415]);
          },
          () => {
            // the server may cut a huge body short: that is a refusal too
            sent++;
          },
        ),
      );
      if (jobs.length >= 50) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
  }
  // slow clients: headers trickled, never finished
  const socks = Array.from({ length: 50 }, () => {
    const s = connect(a.port, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    return s;
  });
  await sleep(1500);
  for (const s of socks) s.destroy();
  const ok = (await fetch(`${a.url}/healthz`)).status === 200;
  await sleep(2000);
  return {
    sent,
    non4xx,
    crashed: !ok || a.proc.exitCode !== null,
    rssBeforeMb: before,
    rssAfterMb: rssBytes(a.proc.pid!) / 2 ** 20,
  };
}

export function summarize(r: SoakReport): string {
  const lines = [
    `load held: ${r.arrived} arrived and ${r.departed} left in ${r.seconds} s (${Math.round(r.arrived / r.seconds)}/s), ${r.scrapes} scrapes, ${r.statusCalls} status calls, ${r.scrapeErrors} failed during restarts; RSS floor after warm-up ${r.rssStartMb.toFixed(0)} -> ${r.rssEndMb.toFixed(0)} MB at half time, before the faults (growth ${r.rssGrowthMb.toFixed(1)} MB, peak ${r.rssPeakMb.toFixed(0)} MB), live heap after ${r.liveHeapMb.length} major GCs ${r.liveHeapMb.length ? `${r.liveHeapMb[0].toFixed(1)} -> ${r.liveHeapMb[r.liveHeapMb.length - 1].toFixed(1)} MB` : 'n/a'}; drift ${r.drift}; count mismatch ${r.countMismatch}`,
    `thresholds: ${r.crossingsDeferred}/${r.crossings} crossings deferred, lag p99 ${r.deferLagP99Ms.toFixed(1)} ms`,
    `faults survived: ${r.kills} kill -9 (flag changed by a kill: ${r.killFlagChanged}; restarted state mismatches: ${r.restartStateMismatch}; ready after restart median ${median(r.restartReadyMs).toFixed(0)} ms, max ${Math.max(0, ...r.restartReadyMs).toFixed(0)} ms)` +
      (r.unmount
        ? `; unmount: up 0 ${r.unmount.upWentZero}, up 1 again ${r.unmount.upCameBack}, count correct ${r.unmount.countCorrect}`
        : ''),
    r.malformed
      ? `bad inputs tried: ${r.malformed.sent} malformed requests, ${r.malformed.non4xx} not answered 4xx, crashed ${r.malformed.crashed}, RSS ${r.malformed.rssBeforeMb.toFixed(0)} -> ${r.malformed.rssAfterMb.toFixed(0)} MB`
      : 'bad inputs: skipped',
    `nothing lost: ${r.problems.length === 0 && r.countMismatch === 0 && r.drift === 0 ? 'yes' : `NO: ${r.problems.join('; ')}`}`,
  ];
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seconds = Number(process.argv[2] ?? 600);
  const kills = Number(process.argv[3] ?? 20);
  const seed = Number(process.argv[4] ?? Date.now() % 100000);
  const r = await runSoak({ seconds, kills, seed, base: 10_000, unmount: true, malformedPerEndpoint: 1000 });
  process.stdout.write(summarize(r) + '\n');
}
