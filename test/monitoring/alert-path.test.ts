// The alert path end to end: agent (real tmpfs spool) -> real Prometheus evaluating the shipped rules every
// second (a copy with every `for:` shortened to 2s) -> real Alertmanager (1s group_wait/group_interval) ->
// a webhook receiver in this test. Filling the spool must fire SpoolGuardSpoolAlmostFull and
// SpoolGuardDeferActive with the right labels and annotations; draining it must resolve both.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ensureSpoolDirs,
  type FixtureMessage,
  removeMessage,
  writeMessage,
} from '../../src/spool/fixture.js';
import {
  type Proc,
  REPO,
  RULES,
  scrapeConfig,
  startAgent,
  startAlertmanager,
  startPrometheus,
} from '../helpers/prometheus.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const RUNBOOK = 'https://github.com/spool-guard/spool-guard/blob/main/docs/runbook.md#';
const have = (b: string) => existsSync(`/usr/bin/${b}`) || existsSync(`/usr/local/bin/${b}`);
const skip = !isRoot
  ? 'needs root (tmpfs)'
  : !have('prometheus') || !have('prometheus-alertmanager')
    ? 'prometheus / prometheus-alertmanager not installed'
    : !existsSync(join(REPO, 'dist', 'cli.js'))
      ? 'run npm run build'
      : false;

interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
}
interface WebhookPayload {
  version: string;
  status: string;
  receiver: string;
  alerts: WebhookAlert[];
}

/** The shipped rules with every `for:` cut to `to`: the path is under test here, not the durations. */
function shortenFor(yaml: string, to = '2s'): string {
  const out = yaml.replace(/^(\s+for:\s*)\S+\s*$/gm, `$1${to}`);
  assert.notEqual(out, yaml, 'no for: found to shorten');
  return out;
}

describe('alert path: agent -> Prometheus -> Alertmanager -> webhook', { skip }, () => {
  let fs: Tmpfs;
  let work: string;
  let flag: string;
  let agent: Proc | undefined;
  let prom: Proc | undefined;
  let am: Proc | undefined;
  let hook: Server | undefined;
  const received: WebhookPayload[] = [];
  const messages: FixtureMessage[] = [];

  /** The last notification the webhook got for an alert of this spool. */
  const last = (alertname: string): WebhookAlert | undefined => {
    let found: WebhookAlert | undefined;
    for (const p of received)
      for (const a of p.alerts) if (a.labels.alertname === alertname && a.labels.spool === 't') found = a;
    return found;
  };

  before(async () => {
    fs = mountTmpfs('16m');
    work = mkdtempSync(join(tmpdir(), 'sg-alertpath-'));
    flag = join(work, 'flags', 't.defer');
    ensureSpoolDirs(fs.dir);

    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        try {
          received.push(JSON.parse(body) as WebhookPayload);
        } catch {}
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((ok) => hook?.listen(0, '127.0.0.1', ok));
    const addr = hook.address();
    const hookPort = typeof addr === 'object' && addr ? addr.port : 0;

    agent = await startAgent(
      (port) => `web:
  listen_address: "127.0.0.1:${port}"
spools:
  - name: t
    path: ${fs.dir}
    mta: exim
    flag_file: ${flag}
    defer:
      used_bytes_ratio: 0.50
    release:
      used_bytes_ratio: 0.30
    min_defer_seconds: 1
`,
      work,
    );
    am = await startAlertmanager(`route:
  receiver: hook
  group_by: [alertname, instance, spool]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:${hookPort}/hook
        send_resolved: true
`);
    prom = await startPrometheus({
      config: `${scrapeConfig(
        agent.port,
        `alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:${am.port}']
`,
      )}rule_files: [spool-guard.rules.yml]\n`,
      files: { 'spool-guard.rules.yml': shortenFor(readFileSync(join(REPO, RULES), 'utf8')) },
      extraArgs: ['--rules.alert.resend-delay=1s'],
    });
    await waitFor(
      'Prometheus to scrape the agent',
      async () => {
        const r = await fetch(
          `${prom?.url}/api/v1/query?query=${encodeURIComponent('spoolguard_spool_up{job="spool-guard"}')}`,
        );
        const j = (await r.json()) as { data: { result: Array<{ value: [number, string] }> } };
        return j.data.result[0]?.value[1] === '1';
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
  });

  after(async () => {
    await prom?.stop();
    await am?.stop();
    await agent?.stop();
    await new Promise<void>((ok) => (hook ? hook.close(() => ok()) : ok()));
    fs?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('an almost full spool fires SpoolGuardSpoolAlmostFull and SpoolGuardDeferActive at the webhook', async () => {
    // queued mail, then a big file on the RAM disk: well above the 0.5 enter line and the 90% alert line
    for (let i = 0; i < 20; i++) messages.push(writeMessage(fs.dir, { bodyBytes: 50_000 }));
    writeFileSync(join(fs.dir, 'filler'), Buffer.alloc(14 * 1024 * 1024, 1));
    await waitFor('the agent to defer', () => existsSync(flag), { timeoutMs: 10_000 });

    const instance = `127.0.0.1:${agent?.port}`;
    const full = await waitFor(
      'SpoolGuardSpoolAlmostFull firing at the webhook',
      () => last('SpoolGuardSpoolAlmostFull')?.status === 'firing' && last('SpoolGuardSpoolAlmostFull'),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
    assert.deepEqual(full.labels, {
      alertname: 'SpoolGuardSpoolAlmostFull',
      severity: 'critical',
      job: 'spool-guard',
      instance,
      spool: 't',
    });
    assert.equal(full.annotations.summary, `Spool t on ${instance} is almost full`);
    assert.match(
      full.annotations.description,
      new RegExp(`^Spool t on ${instance} is (9\\d|100)(\\.\\d+)?% full \\(bytes\\)\\.`),
    );
    assert.equal(full.annotations.runbook_url, `${RUNBOOK}spoolguardspoolalmostfull`);

    const defer = await waitFor(
      'SpoolGuardDeferActive firing at the webhook',
      () => last('SpoolGuardDeferActive')?.status === 'firing' && last('SpoolGuardDeferActive'),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
    assert.deepEqual(defer.labels, {
      alertname: 'SpoolGuardDeferActive',
      severity: 'warning',
      job: 'spool-guard',
      instance,
      spool: 't',
    });
    assert.equal(defer.annotations.summary, `Relay ${instance} is deferring mail for spool t`);
    assert.match(defer.annotations.description, new RegExp(`spool t on ${instance} in defer mode`));
    // the reasons come from spoolguard_defer_reason through the query template
    assert.match(defer.annotations.description, /\(reasons: [a-z_, ]*\bbytes\b[a-z_, ]*\)/);
    assert.equal(defer.annotations.runbook_url, `${RUNBOOK}spoolguarddeferactive`);

    // every notification came in through the receiver Alertmanager was configured with
    for (const p of received) assert.equal(p.receiver, 'hook');
  });

  test('draining the spool resolves both alerts', async () => {
    unlinkSync(join(fs.dir, 'filler'));
    for (const m of messages) removeMessage(fs.dir, m);
    await waitFor('the agent to release defer mode', () => !existsSync(flag), { timeoutMs: 15_000 });
    for (const name of ['SpoolGuardSpoolAlmostFull', 'SpoolGuardDeferActive']) {
      const a = await waitFor(
        `${name} resolved at the webhook`,
        () => last(name)?.status === 'resolved' && last(name),
        {
          timeoutMs: 30_000,
          intervalMs: 100,
        },
      );
      assert.ok(Date.parse(a.endsAt) >= Date.parse(a.startsAt), `${name}: endsAt after startsAt`);
      assert.equal(a.labels.spool, 't');
    }
  });
});
