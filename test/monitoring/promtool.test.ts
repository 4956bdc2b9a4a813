// The monitoring kit, statically: promtool checks and unit-tests the rules; the rules, the runbook and both
// dashboards follow the conventions of issue 4 (and of grafana's dashboard-linter / the monitoring mixins).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { parseDuration } from '../../src/util/duration.js';
import {
  allPanels,
  counterContexts,
  DASHBOARDS,
  dashboardExpressions,
  loadDashboard,
  metricNames,
  RULES,
  REPO,
  rangesOf,
} from '../helpers/prometheus.js';

const DS_UID = ['$', '{datasource}'].join('');
const RUNBOOK_BASE = 'https://github.com/spool-guard/spool-guard/blob/main/docs/runbook.md#';
const promtool = spawnSync('promtool', ['--version']).status === 0;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = (
  YAML.parse(readFileSync(join(REPO, RULES), 'utf8')) as { groups: Array<{ rules: Rule[] }> }
).groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);
const testFiles = readdirSync(join(REPO, 'alerts/tests'))
  .filter((f) => f.endsWith('.yml'))
  .map((f) => `alerts/tests/${f}`);

/** Alerts the issue asks for, by what they are about. */
const REQUIRED: Record<string, string> = {
  'agent down': 'SpoolGuardAgentDown',
  'agent absent': 'SpoolGuardAgentAbsent',
  'spool not on tmpfs': 'SpoolGuardSpoolNotTmpfs',
  'spool filling up (time to full under a horizon)': 'SpoolGuardSpoolFillingUp',
  'spool almost full (bytes)': 'SpoolGuardSpoolAlmostFull',
  'inodes almost exhausted': 'SpoolGuardInodesAlmostExhausted',
  'defer mode active': 'SpoolGuardDeferActive',
  'defer mode stuck on too long': 'SpoolGuardDeferStuck',
  'defer mode flapping': 'SpoolGuardDeferFlapping',
  'queue backlog': 'SpoolGuardQueueBacklog',
  'oldest message too old': 'SpoolGuardOldestMessageTooOld',
  'frozen messages piling up': 'SpoolGuardFrozenMessages',
  'backup MX down while deferring': 'SpoolGuardBackupMXDownWhileDeferring',
  'defer mode not enforced by the relay': 'SpoolGuardDeferNotEnforced',
  'a manual off override in force': 'SpoolGuardManualOffOverride',
  'retry host down': 'SpoolGuardRetryHostDown',
  'rescan drift': 'SpoolGuardRescanDrift',
  'spool unreadable': 'SpoolGuardSpoolUnreadable',
};
/** Alerts whose series have no `spool` label (agent-wide or per peer), and the one without an instance. */
const NO_SPOOL = new Set([
  'SpoolGuardAgentDown',
  'SpoolGuardAgentAbsent',
  'SpoolGuardConfigReloadFailed',
  'SpoolGuardRetryHostDown',
]);
const NO_INSTANCE = new Set(['SpoolGuardAgentAbsent']);

// Locally the tests that need Prometheus skip when it is missing; in CI (CI set) a missing tool is a failure.
test('the monitoring tools and the built agent are installed', {
  skip: !process.env.CI && 'only enforced in CI',
}, () => {
  for (const bin of ['promtool', 'prometheus', 'prometheus-alertmanager']) {
    assert.equal(
      spawnSync(bin, ['--version']).status,
      0,
      `${bin} missing: apt-get install prometheus prometheus-alertmanager`,
    );
  }
  assert.ok(existsSync(join(REPO, 'dist', 'cli.js')), 'dist/cli.js missing: npm run build');
});

describe('promtool', { skip: !promtool && 'promtool is not installed' }, () => {
  test('promtool check rules accepts the rules file', () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  test('promtool test rules passes every unit test file', () => {
    assert.ok(testFiles.length > 0);
    const r = spawnSync('promtool', ['test', 'rules', ...testFiles], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal((r.stdout.match(/SUCCESS/g) ?? []).length, testFiles.length, r.stdout);
  });
});

describe('alerting rules', () => {
  test('every alert the issue lists exists', () => {
    const names = new Set(alerts.map((a) => a.alert));
    for (const [what, name] of Object.entries(REQUIRED))
      assert.ok(names.has(name), `${what}: ${name} missing`);
  });

  test('every alert has a severity, summary, templated description and its runbook section', () => {
    const runbook = readFileSync(join(REPO, 'docs/runbook.md'), 'utf8');
    const anchors = new Set([...runbook.matchAll(/^##\s+(\S+)\s*$/gm)].map((m) => m[1].toLowerCase()));
    const names = new Set<string>();
    for (const a of alerts) {
      const n = a.alert as string;
      assert.ok(!names.has(n), `${n} defined twice`);
      names.add(n);
      assert.match(n, /^SpoolGuard[A-Z][A-Za-z]+$/);
      assert.ok(['critical', 'warning', 'info'].includes(a.labels?.severity ?? ''), `${n}: severity`);
      const ann = a.annotations ?? {};
      assert.ok(ann.summary, `${n}: summary`);
      assert.ok(ann.description, `${n}: description`);
      if (!NO_SPOOL.has(n))
        assert.match(`${ann.summary} ${ann.description}`, /\$labels\.spool/, `${n}: spool in text`);
      if (!NO_INSTANCE.has(n))
        assert.match(ann.description, /\$labels\.instance/, `${n}: instance in description`);
      assert.equal(ann.runbook_url, RUNBOOK_BASE + n.toLowerCase(), `${n}: runbook_url`);
      assert.ok(anchors.has(n.toLowerCase()), `${n}: no "## ${n}" section in docs/runbook.md`);
      // the runbook section explains the for: chosen
      const section = runbook.split(/^##\s+/m).find((s) => s.startsWith(`${n}\n`)) ?? '';
      assert.match(section, /### What it means/, `${n}: runbook "What it means"`);
      assert.match(section, /### What to check/, `${n}: runbook "What to check"`);
      assert.match(section, /### What to do/, `${n}: runbook "What to do"`);
      assert.ok(section.includes(`for: ${a.for ?? '0m'}`), `${n}: runbook does not explain "for: ${a.for}"`);
    }
    // and no runbook section for an alert that does not exist
    for (const anchor of anchors)
      assert.ok(
        [...names].some((n) => n.toLowerCase() === anchor),
        `stray section ${anchor}`,
      );
  });

  test('recording rules follow level:metric:operation naming and the agent exports no ratio of its own', () => {
    for (const r of rules.filter((x) => x.record)) {
      assert.match(r.record as string, /^[a-z_]+:[a-z_]+:[a-z0-9_]+$/, r.record);
    }
    // ratios are computed from size/avail and files/files_free: the agent has no ratio series (bar thresholds)
    for (const r of rules) {
      for (const n of metricNames(r.expr)) {
        if (n.startsWith('spoolguard_')) assert.doesNotMatch(n, /ratio$/, `${r.alert ?? r.record}: ${n}`);
      }
    }
  });

  test('every alert is unit-tested firing and not firing, with a test at its for: edge', () => {
    interface AlertCase {
      eval_time: string;
      alertname: string;
      exp_alerts?: unknown[];
    }
    interface Group {
      interval?: string;
      alert_rule_test?: AlertCase[];
    }
    const groups: Array<{ file: string; evalInterval: number; g: Group }> = [];
    for (const f of testFiles) {
      const doc = YAML.parse(readFileSync(join(REPO, f), 'utf8')) as {
        evaluation_interval?: string;
        tests: Group[];
      };
      for (const g of doc.tests)
        groups.push({ file: f, evalInterval: parseDuration(doc.evaluation_interval ?? '1m'), g });
    }
    for (const a of alerts) {
      const n = a.alert as string;
      const forS = parseDuration(a.for ?? '0s');
      let firing = false;
      let quiet = false;
      let edge = false;
      for (const { evalInterval, g } of groups) {
        const cases = (g.alert_rule_test ?? []).filter((c) => c.alertname === n);
        const fire = cases
          .filter((c) => (c.exp_alerts ?? []).length > 0)
          .map((c) => parseDuration(c.eval_time));
        const none = cases
          .filter((c) => (c.exp_alerts ?? []).length === 0)
          .map((c) => parseDuration(c.eval_time));
        if (fire.length) firing = true;
        if (none.length) quiet = true;
        // the edge: not yet firing one evaluation before it fires, in the same scenario
        if (fire.some((t) => none.some((u) => u < t && t - u <= evalInterval))) edge = true;
      }
      assert.ok(firing, `${n}: no unit test where it fires`);
      assert.ok(quiet, `${n}: no unit test where it stays quiet`);
      if (forS > 0) assert.ok(edge, `${n}: no unit test at the edge of its for: ${a.for}`);
    }
  });
});

describe('dashboards', () => {
  for (const file of DASHBOARDS) {
    describe(file, () => {
      const d = loadDashboard(file);
      const panels = allPanels(d).filter((p) => p.type !== 'row');

      test('is an importable dashboard with a uid, tags and time settings', () => {
        assert.match(d.uid, /^spool-guard/);
        assert.equal(d.id, null, 'id must be null so import and provisioning assign one');
        assert.ok(typeof d.schemaVersion === 'number' && d.schemaVersion >= 36);
        assert.ok(Array.isArray(d.tags) && (d.tags as string[]).includes('spool-guard'));
        assert.ok(panels.length > 0);
        const ids = allPanels(d).map((p) => p.id);
        assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
      });

      test('has a datasource variable and job/instance/spool query variables', () => {
        const vars = new Map(d.templating.list.map((v) => [v.name, v]));
        const ds = vars.get('datasource');
        assert.ok(ds, 'datasource variable');
        assert.equal(ds.type, 'datasource');
        assert.equal(ds.query, 'prometheus');
        for (const name of ['job', 'instance', 'spool']) {
          const v = vars.get(name);
          assert.ok(v, `${name} variable`);
          assert.equal(v.type, 'query', name);
          assert.equal(v.multi, true, `${name}: multi-select`);
          assert.equal(v.includeAll, true, `${name}: includeAll`);
          assert.equal(v.allValue, '.+', `${name}: allValue`);
          assert.equal(v.refresh, 2, `${name}: refresh on time range change`);
          assert.deepEqual(v.datasource, { type: 'prometheus', uid: DS_UID }, `${name}: datasource`);
        }
      });

      test('every panel has a unit, a description and uses the datasource variable', () => {
        for (const p of panels) {
          assert.ok(p.description && p.description.length > 10, `"${p.title}": description`);
          assert.ok(p.fieldConfig?.defaults?.unit, `"${p.title}": unit`);
          assert.equal(p.datasource?.uid, DS_UID, `"${p.title}": datasource`);
          assert.ok((p.targets ?? []).length > 0, `"${p.title}": no query`);
          for (const t of p.targets ?? []) {
            assert.equal(t.datasource?.uid, DS_UID, `"${p.title}" ${t.refId}: datasource`);
            assert.match(t.expr ?? '', /\S/, `"${p.title}" ${t.refId}: empty expr`);
          }
        }
        assert.doesNotMatch(
          JSON.stringify(d),
          /"uid":\s*"(?!\$\{datasource\}|-- Grafana --|spool-guard)[^"]*"/,
        );
      });

      test('every rate() uses $__rate_interval and counters appear only inside rate/increase', () => {
        for (const { where, expr } of dashboardExpressions(d)) {
          for (const r of [...rangesOf(expr, 'rate'), ...rangesOf(expr, 'irate')]) {
            assert.equal(r, '$__rate_interval', `${where}: rate over [${r}]: ${expr}`);
          }
          for (const r of rangesOf(expr, 'increase')) {
            assert.ok(
              ['$__rate_interval', '$__range'].includes(r),
              `${where}: increase over [${r}]: ${expr}`,
            );
          }
          for (const c of counterContexts(expr)) {
            assert.ok(
              ['rate', 'irate', 'increase'].includes(c.fn ?? ''),
              `${where}: counter ${c.name} outside rate/increase`,
            );
          }
          for (const n of metricNames(expr)) {
            assert.match(n, /^(spoolguard_[a-z_]+|up)$/, `${where}: unexpected series ${n}`);
          }
          // every selector is restricted by the dashboard's variables
          for (const sel of expr.matchAll(/\b(spoolguard_[a-z_]+|up)\s*(\{[^}]*\})?/g)) {
            if (/^spoolguard_build_info$/.test(sel[1]) && /variable job/.test(where)) continue;
            assert.match(sel[2] ?? '', /job=~"\$job"/, `${where}: ${sel[0]} not filtered by $job`);
          }
        }
      });
    });
  }

  test('the relay dashboard shows what issue 4 asks for', () => {
    const d = loadDashboard('dashboards/spool-guard.json');
    const panels = allPanels(d);
    const exprs = (p: { targets?: Array<{ expr?: string }> }) =>
      (p.targets ?? []).map((t) => t.expr ?? '').join('\n');
    const st = panels.filter((p) => p.type === 'state-timeline');
    assert.ok(
      st.some((p) => /spoolguard_defer_active/.test(exprs(p)) && /spoolguard_defer_reason/.test(exprs(p))),
      'a state timeline of defer state with its reasons',
    );
    for (const res of ['bytes', 'inodes']) {
      assert.ok(
        panels.some((p) => {
          const e = exprs(p);
          return (
            p.fieldConfig?.defaults?.unit === 'percentunit' &&
            new RegExp(`spoolguard_defer_threshold_ratio\\{[^}]*resource="${res}", edge="enter"`).test(e) &&
            new RegExp(`spoolguard_defer_threshold_ratio\\{[^}]*resource="${res}", edge="release"`).test(e)
          );
        }),
        `${res} ratio with enter/release lines`,
      );
    }
    const all = panels.map(exprs).join('\n');
    for (const m of [
      'spoolguard_queue_messages',
      'spoolguard_queue_bytes',
      'spoolguard_queue_frozen_messages',
      'spoolguard_queue_oldest_message_timestamp_seconds',
      'spoolguard_fill_rate_bytes_per_second',
      'spoolguard_time_to_full_seconds',
      'spoolguard_defer_transitions_total',
      'spoolguard_defer_seconds_total',
      'spoolguard_peer_up',
      'spoolguard_spool_up',
      'spoolguard_rescan_drift_messages',
      'spoolguard_spool_stray_files',
    ]) {
      assert.ok(all.includes(m), `relay dashboard uses ${m}`);
    }
  });

  test('the fleet dashboard counts deferring relays, shows the worst time to full and sorts relays by risk', () => {
    const d = loadDashboard('dashboards/spool-guard-fleet.json');
    const panels = allPanels(d);
    const exprs = (p: { targets?: Array<{ expr?: string }> }) =>
      (p.targets ?? []).map((t) => t.expr ?? '').join('\n');
    assert.ok(
      panels.some(
        (p) =>
          p.type === 'stat' && /count\(max by \(job, instance\) \(spoolguard_defer_active/.test(exprs(p)),
      ),
    );
    assert.ok(panels.some((p) => p.type === 'stat' && /min\(spoolguard_time_to_full_seconds/.test(exprs(p))));
    const table = panels.find((p) => p.type === 'table');
    assert.ok(table, 'a table of relays');
    const sort = (table.transformations ?? []).find((t) => t.id === 'sortBy');
    assert.ok(sort, 'sorted');
    assert.deepEqual((sort.options as { sort: unknown[] }).sort[0], { field: 'Value #A', desc: true });
    assert.match(table.targets?.[0]?.expr ?? '', /spoolguard_defer_active/, 'risk counts defer mode');
  });
});
