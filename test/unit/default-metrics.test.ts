// The process_* and nodejs_* series: prom-client's defaults, with the event-loop delay
// summaries computed at most once a second instead of at every scrape.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectDefaultMetrics as promDefaults, Registry } from 'prom-client';
import { collectDefaultMetrics, LAG_SUMMARY_INTERVAL_MS } from '../../src/metrics/default-metrics.js';
import { metricValue } from '../helpers/agent.js';
import { waitFor } from '../helpers/wait.js';

const names = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => `${m.name} ${m.type}`).sort();

test("the same series, names and types as prom-client's collectDefaultMetrics", async () => {
  const ours = new Registry();
  collectDefaultMetrics(ours);
  const theirs = new Registry();
  promDefaults({ register: theirs });
  assert.deepEqual(await names(ours), await names(theirs));
});

test('event-loop delay summaries: one computation a second, then the delays recorded since', async () => {
  const reg = new Registry();
  collectDefaultMetrics(reg);
  const max = async () => metricValue(await reg.metrics(), 'nodejs_eventloop_lag_max_seconds') ?? Number.NaN;
  await new Promise((r) => setTimeout(r, 50)); // the histogram's timer has ticked
  await max(); // the first computation (the histogram is reset, and the tick after a reset only restarts it)
  await new Promise((r) => setTimeout(r, 50));
  const blockedUntil = performance.now() + 120;
  while (performance.now() < blockedUntil) {} // the event loop is blocked for 120 ms
  await new Promise((r) => setTimeout(r, 20)); // the histogram records the delay
  const cached = await max();
  assert.ok(
    cached < 0.1,
    `served from the previous computation within ${LAG_SUMMARY_INTERVAL_MS} ms (${cached})`,
  );
  await waitFor('the next computation sees the 120 ms delay', async () => (await max()) >= 0.1, {
    timeoutMs: 5000,
    intervalMs: 50,
  });
});
