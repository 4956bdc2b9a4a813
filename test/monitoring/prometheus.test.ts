// The kit against the real thing: a running agent (real tmpfs spool in Exim's layout, SMTP stubs for the
// relay and its peers) scraped every second by a real Prometheus that evaluates the shipped rules every
// second. Every spoolguard_* name the dashboards and rules use must be in the agent's /metrics, every rule
// must evaluate without error, and every dashboard expression (Grafana variables substituted) must be
// accepted by Prometheus's query API.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { ensureSpoolDirs, writeMessage } from '../../src/spool/fixture.js';
import {
  DASHBOARDS,
  dashboardExpressions,
  loadDashboard,
  metricNames,
  type Proc,
  promGet,
  promQuery,
  REPO,
  RULES,
  type SmtpStub,
  scrapeConfig,
  startAgent,
  startPrometheus,
  startSmtpStub,
  substituteGrafana,
} from '../helpers/prometheus.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const haveProm = existsSync('/usr/bin/prometheus') || existsSync('/usr/local/bin/prometheus');
const haveAgent = existsSync(join(REPO, 'dist', 'cli.js'));
const skip = !isRoot
  ? 'needs root (tmpfs)'
  : !haveProm
    ? 'prometheus not installed'
    : !haveAgent
      ? 'run npm run build'
      : false;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rulesText = readFileSync(join(REPO, RULES), 'utf8');
const rules: Rule[] = (YAML.parse(rulesText) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(
  (g) => g.rules,
);
const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record as string));

/** Where each spoolguard_* name is used, over both dashboards and the rules. */
function usedNames(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (name: string, where: string) => used.set(name, [...(used.get(name) ?? []), where]);
  for (const f of DASHBOARDS) {
    for (const { where, expr } of dashboardExpressions(loadDashboard(f))) {
      for (const n of metricNames(expr)) if (n.startsWith('spoolguard_')) add(n, where);
    }
  }
  for (const r of rules)
    for (const n of metricNames(r.expr)) if (n.startsWith('spoolguard_')) add(n, r.alert ?? r.record ?? '');
  return used;
}

describe('the kit against a running agent and a real Prometheus', { skip }, () => {
  let fs: Tmpfs;
  let work: string;
  let flag: string;
  let agent: Proc | undefined;
  let prom: Proc | undefined;
  const stubs: SmtpStub[] = [];
  let exposition = '';

  before(async () => {
    fs = mountTmpfs('32m');
    work = mkdtempSync(join(tmpdir(), 'sg-mon-'));
    flag = join(work, 'flags', 't.defer');
    ensureSpoolDirs(fs.dir);
    // a queue with something in every figure: plain, frozen, journalled, split, new-format id, and an old one
    writeMessage(fs.dir, { bodyBytes: 4096 });
    writeMessage(fs.dir, { frozen: true, msglog: true });
    writeMessage(fs.dir, { journal: true, split: true, format: 'new' });
    writeMessage(fs.dir, { arrival: Math.floor(Date.now() / 1000) - 7200 });
    const relay = await startSmtpStub(() =>
      existsSync(flag) ? '421 4.3.2 deferring' : '220 relay.test ESMTP',
    );
    const mx2 = await startSmtpStub(() => '220 mx2.test ESMTP');
    const retry = await startSmtpStub(() => '220 retry.test ESMTP');
    stubs.push(relay, mx2, retry);
    writeFileSync(join(work, 'token'), 'test-token-0123456789\n', { mode: 0o600 });
    agent = await startAgent(
      (port) => `web:
  listen_address: "127.0.0.1:${port}"
api:
  token_file: token
rescan:
  schedule: "* * * * * *"
probes:
  - name: mx2
    role: backup_mx
    address: ${mx2.address}
    interval: 1s
    timeout: 1s
  - name: retry
    role: retry_host
    address: ${retry.address}
    interval: 1s
    timeout: 1s
spools:
  - name: t
    path: ${fs.dir}
    mta: exim
    flag_file: ${flag}
    relay_address: ${relay.address}
    relay_check_interval: 1s
    defer:
      used_bytes_ratio: 0.80
      used_inodes_ratio: 0.80
      queue_messages: 1000
    release:
      used_bytes_ratio: 0.60
      used_inodes_ratio: 0.60
      queue_messages: 500
    min_defer_seconds: 1
`,
      work,
    );
    // a manual "off" override, so that the override series (and their expiry) have samples too
    const r = await fetch(`${agent.url}/api/v1/defer`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-token-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ spool: 't', mode: 'off', ttl_seconds: 600 }),
    });
    assert.equal(r.status, 200, await r.text());
    prom = await startPrometheus({
      config: `${scrapeConfig(agent.port)}rule_files: [spool-guard.rules.yml]\n`,
      files: { 'spool-guard.rules.yml': rulesText },
    });
  });

  after(async () => {
    await prom?.stop();
    await agent?.stop();
    for (const s of stubs) await s.close();
    fs?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('every spoolguard_* name in the dashboards and rules is exported by the agent', async () => {
    // wait for the probes and the relay check to have reported, so conditional series are there
    exposition = await waitFor(
      'peer, relay and fill-rate series in /metrics',
      async () => {
        const t = await (await fetch(`${agent?.url}/metrics`)).text();
        const ready = [
          /^spoolguard_peer_up\{[^}]*\} 1$/m,
          /^spoolguard_relay_enforcing\{[^}]*\} 1$/m,
          /^spoolguard_fill_rate_bytes_per_second\{/m, // needs a few observations for its slope
        ];
        return ready.every((re) => re.test(t)) && t;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    const declared = new Set([...exposition.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]));
    const sampled = new Set(
      [...exposition.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? \S+$/gm)].map((m) => m[1]),
    );
    const missing: string[] = [];
    const withoutSamples: string[] = [];
    for (const [name, where] of usedNames()) {
      if (recorded.has(name)) continue;
      if (!declared.has(name)) missing.push(`${name} (used by ${where.slice(0, 3).join('; ')})`);
      else if (!sampled.has(name)) withoutSamples.push(name);
    }
    assert.deepEqual(missing, [], `not exported by the agent:\n${missing.join('\n')}`);
    // in this scenario (queue, probes, relay check, override) every used series has a sample
    assert.deepEqual(withoutSamples, [], `declared but without samples: ${withoutSamples.join(', ')}`);
    // and the recording rules are all defined where they are used
    for (const name of usedNames().keys()) if (name.includes(':')) assert.ok(recorded.has(name), name);
  });

  test('Prometheus scrapes the agent and evaluates every shipped rule without error', async () => {
    const p = prom as Proc;
    await waitFor(
      'the agent scraped',
      async () => {
        const r = await promQuery(
          p.url,
          'up{job="spool-guard"} == 1 and on (job, instance) spoolguard_spool_up == 1',
        );
        return (r.data?.result.length ?? 0) > 0;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    interface RuleState {
      name: string;
      health: string;
      lastError?: string;
      lastEvaluation: string;
    }
    const groups = await waitFor(
      'every rule evaluated',
      async () => {
        const d = await promGet<{ groups: Array<{ rules: RuleState[] }> }>(p.url, '/api/v1/rules');
        const all = d.groups.flatMap((g) => g.rules);
        return all.length === rules.length && all.every((r) => r.health !== 'unknown') && all;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    const bad = groups
      .filter((r) => r.health !== 'ok')
      .map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
    assert.deepEqual(bad, []);
    // the recording rules produce the ratios for the real tmpfs
    for (const rec of recorded) {
      const r = await waitFor(`${rec} has a value`, async () => {
        const q = await promQuery(p.url, rec);
        return (q.data?.result.length ?? 0) > 0 && q;
      });
      assert.deepEqual(Object.keys(r.data?.result[0].metric ?? {}).sort(), [
        '__name__',
        'instance',
        'job',
        'spool',
      ]);
    }
    const ratio = await promQuery(p.url, 'spool:spoolguard_filesystem_used_bytes:ratio');
    const v = Number(ratio.data?.result[0].value?.[1]);
    assert.ok(v > 0 && v < 0.5, `used bytes ratio ${v}`);
    // the manual off override set in before() makes its alert go pending (for: 1m) with the expected labels
    const pending = await waitFor('SpoolGuardManualOffOverride pending', async () => {
      const d = await promGet<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>(
        p.url,
        '/api/v1/alerts',
      );
      return d.alerts.find((a) => a.labels.alertname === 'SpoolGuardManualOffOverride');
    });
    assert.equal(pending.state, 'pending');
    assert.equal(pending.labels.spool, 't');
    assert.equal(pending.labels.severity, 'warning');
  });

  test('every dashboard expression is accepted by the Prometheus query API', async () => {
    const p = prom as Proc;
    // a few scrapes, so that rate() over the substituted 1m has two samples or more
    await waitFor('five scrapes', async () => {
      const r = await promQuery(p.url, 'count_over_time(spoolguard_build_info[1m]) >= 5');
      return (r.data?.result.length ?? 0) > 0;
    });
    const errors: string[] = [];
    const empty: string[] = [];
    let n = 0;
    for (const f of DASHBOARDS) {
      for (const { where, expr } of dashboardExpressions(loadDashboard(f))) {
        const q = substituteGrafana(expr);
        assert.doesNotMatch(q, /\$/, `${where}: unsubstituted variable in ${q}`);
        const r = await promQuery(p.url, q);
        n++;
        if (r.status !== 'success') errors.push(`${where}: ${r.errorType}: ${r.error}\n  ${q}`);
        else if ((r.data?.result.length ?? 0) === 0) empty.push(`${where}: ${q}`);
      }
    }
    assert.ok(n > 40, `${n} expressions`);
    assert.deepEqual(errors, [], errors.join('\n'));
    // Only what this scenario cannot show may come back empty: a spool that is not filling has no time to
    // full, and nothing here is down, errs or deferred.
    const allowedEmpty = [
      /< \+Inf/, // time to full while filling
      /spoolguard_time_to_full_seconds/,
      /changes\(spoolguard_defer_active/, // annotation: defer mode entered
    ];
    const unexpected = empty.filter((e) => !allowedEmpty.some((re) => re.test(e)));
    assert.deepEqual(unexpected, [], `expressions without data:\n${unexpected.join('\n')}`);
  });

  test('the variable queries find the agent', async () => {
    const p = prom as Proc;
    const jobs = await promGet<string[]>(
      p.url,
      `/api/v1/label/job/values?match[]=${encodeURIComponent('spoolguard_build_info')}`,
    );
    assert.deepEqual(jobs, ['spool-guard']);
    const spools = await promGet<string[]>(
      p.url,
      `/api/v1/label/spool/values?match[]=${encodeURIComponent('spoolguard_spool_info{job=~".+",instance=~".+"}')}`,
    );
    assert.deepEqual(spools, ['t']);
  });
});
