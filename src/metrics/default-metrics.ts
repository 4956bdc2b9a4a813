// prom-client's default process_* and nodejs_* series, with one change: the event-loop delay
// summaries. prom-client computes min, max, mean, stddev and three percentiles of its
// HdrHistogram at every scrape, each a walk over the whole histogram: about 0.7 ms of a
// 2 ms /metrics render (measured in the agent). Here they are computed at most once a second,
// over the delays recorded since the previous computation, and served from that in between,
// so 20 scrapes/s cost the walk once. Same names, help and meaning ("recent" event-loop delay).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';
import gc from 'prom-client/lib/metrics/gc.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';

/** Event-loop delay summaries are recomputed at most this often. */
export const LAG_SUMMARY_INTERVAL_MS = 1000;

export function collectDefaultMetrics(register: Registry): void {
  for (const collector of [
    processCpuTotal,
    processStartTime,
    osMemoryHeap,
    processOpenFileDescriptors,
    processMaxFileDescriptors,
    processResources,
    processHandles,
    processRequests,
    heapSizeAndUsed,
    heapSpacesSizeAndUsed,
    version,
    gc,
  ])
    collector(register, {});
  eventLoopLag(register);
}

function eventLoopLag(register: Registry): void {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const summary = { min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 };
  let computedAt = Number.NEGATIVE_INFINITY;
  const refresh = () => {
    const now = performance.now();
    if (now - computedAt < LAG_SUMMARY_INTERVAL_MS) return;
    computedAt = now;
    if (h.count > 0) {
      summary.min = h.min / 1e9;
      summary.max = h.max / 1e9;
      summary.mean = h.mean / 1e9;
      summary.stddev = h.stddev / 1e9;
      summary.p50 = h.percentile(50) / 1e9;
      summary.p90 = h.percentile(90) / 1e9;
      summary.p99 = h.percentile(99) / 1e9;
    }
    h.reset();
  };
  // the lag of one setImmediate, as prom-client measures it: set when it fires, seen by the next scrape
  const lag = new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers: [register],
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => this.set(Number(process.hrtime.bigint() - start) / 1e9));
      refresh();
    },
  });
  void lag;
  const stat = (key: keyof typeof summary, name: string, help: string) =>
    new Gauge({
      name: `nodejs_eventloop_lag_${name}_seconds`,
      help,
      registers: [register],
      collect() {
        refresh();
        this.set(summary[key]);
      },
    });
  stat('min', 'min', 'The minimum recorded event loop delay.');
  stat('max', 'max', 'The maximum recorded event loop delay.');
  stat('mean', 'mean', 'The mean of the recorded event loop delays.');
  stat('stddev', 'stddev', 'The standard deviation of the recorded event loop delays.');
  stat('p50', 'p50', 'The 50th percentile of the recorded event loop delays.');
  stat('p90', 'p90', 'The 90th percentile of the recorded event loop delays.');
  stat('p99', 'p99', 'The 99th percentile of the recorded event loop delays.');
}
