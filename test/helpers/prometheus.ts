// Real monitoring processes for tests, on loopback: Prometheus, Alertmanager, the spool-guard agent as their
// scrape target, and SMTP stubs standing in for the relay and its peers. Every start returns an object whose
// stop() ends the process it started (SIGTERM, then SIGKILL after a deadline) and removes its temp dir.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPort } from './agent.js';
import { waitFor } from './wait.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A port that was free a moment ago on 127.0.0.1 (the kernel picks it; the caller binds it right away). */
export const freePort = (): Promise<number> => freeLoopbackPort();

export interface Proc {
  name: string;
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
  /** the process's combined stdout/stderr so far (for failure messages) */
  log(): string;
  stop(): Promise<void>;
}

function tail(s: string, n = 3000): string {
  return s.length > n ? `...${s.slice(-n)}` : s;
}

async function stopChild(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, timeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Spawns `cmd args` with output to a log file in `dir`, waits until `readyPath` answers 200. */
async function startProc(
  name: string,
  cmd: string,
  args: string[],
  dir: string,
  port: number,
  readyPath: string,
  { timeoutMs = 20_000, keepDir = false }: { timeoutMs?: number; keepDir?: boolean } = {},
): Promise<Proc> {
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', fd, fd] });
  const url = `http://127.0.0.1:${port}`;
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const proc: Proc = {
    name,
    url,
    port,
    dir,
    child,
    log,
    async stop() {
      await stopChild(child);
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      `${name} ready on ${url}${readyPath}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${tail(log())}`);
        const r = await fetch(url + readyPath, { signal: AbortSignal.timeout(1000) });
        return r.status === 200;
      },
      { timeoutMs, intervalMs: 100 },
    );
  } catch (e) {
    const msg = `${(e as Error).message}\n--- ${name} log ---\n${tail(log())}`;
    await proc.stop();
    throw new Error(msg);
  }
  return proc;
}

export interface PrometheusOptions {
  /** prometheus.yml text; `rule_files` entries may name files written from `files` */
  config: string;
  /** extra files written into the Prometheus directory before start (name -> content) */
  files?: Record<string, string>;
  extraArgs?: string[];
}

export async function startPrometheus(o: PrometheusOptions): Promise<Proc> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-prom-'));
  for (const [name, content] of Object.entries(o.files ?? {})) writeFileSync(join(dir, name), content);
  writeFileSync(join(dir, 'prometheus.yml'), o.config);
  const port = await freePort();
  return await startProc(
    'prometheus',
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
      '--log.level=warn',
      ...(o.extraArgs ?? []),
    ],
    dir,
    port,
    '/-/ready',
  );
}

export async function startAlertmanager(config: string): Promise<Proc> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-am-'));
  writeFileSync(join(dir, 'alertmanager.yml'), config);
  const port = await freePort();
  return await startProc(
    'alertmanager',
    'prometheus-alertmanager',
    [
      `--config.file=${join(dir, 'alertmanager.yml')}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    dir,
    port,
    '/-/ready',
  );
}

/** The agent under test: `node dist/cli.js run --config <file> --web.listen-address 127.0.0.1:<port>`. */
export async function startAgent(configYaml: (port: number) => string, dir: string): Promise<Proc> {
  const port = await freePort();
  const cfg = join(dir, 'spool-guard.yml');
  writeFileSync(cfg, configYaml(port));
  return await startProc(
    'spool-guard',
    process.execPath,
    [join(REPO, 'dist', 'cli.js'), 'run', '--config', cfg, '--web.listen-address', `127.0.0.1:${port}`],
    dir,
    port,
    '/readyz',
    { keepDir: true },
  );
}

export interface PromResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string] }> };
}

/** An instant query through the HTTP API (POST, so long expressions need no URL escaping). */
export async function promQuery(url: string, expr: string): Promise<PromResult> {
  const r = await fetch(`${url}/api/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ query: expr }),
    signal: AbortSignal.timeout(10_000),
  });
  return (await r.json()) as PromResult;
}

export async function promGet<T>(url: string, path: string): Promise<T> {
  const r = await fetch(url + path, { signal: AbortSignal.timeout(10_000) });
  const j = (await r.json()) as { status: string; data: T; error?: string };
  if (j.status !== 'success') throw new Error(`${path}: ${j.error}`);
  return j.data;
}

export interface SmtpStub {
  port: number;
  address: string;
  /** greetings sent so far */
  count: number;
  close(): Promise<void>;
}

/** A TCP server that sends one SMTP greeting line chosen per connection, then answers QUIT and closes. */
export async function startSmtpStub(greeting: () => string): Promise<SmtpStub> {
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    stub.count++;
    const g = greeting();
    sock.write(`${g}\r\n`);
    if (/^4/.test(g)) {
      sock.end();
      return;
    }
    sock.on('data', (d) => {
      if (/^QUIT/im.test(d.toString())) sock.end('221 bye\r\n');
      else sock.write('250 ok\r\n');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  const stub: SmtpStub = {
    port,
    address: `127.0.0.1:${port}`,
    count: 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
  return stub;
}

/** Prometheus scrape config for one agent on loopback, scraped every second. */
export function scrapeConfig(agentPort: number, extra = ''): string {
  return `global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
${extra}
scrape_configs:
  - job_name: spool-guard
    static_configs:
      - targets: ['127.0.0.1:${agentPort}']
`;
}

// ---- the shipped kit: dashboards, rules, and the PromQL in them --------------------------------------------

export const DASHBOARDS = ['dashboards/spool-guard.json', 'dashboards/spool-guard-fleet.json'];
export const RULES = 'alerts/spool-guard.rules.yml';

export interface DashPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Array<{ expr?: string; refId?: string; datasource?: { uid?: string } }>;
  panels?: DashPanel[];
  options?: Record<string, unknown>;
  transformations?: Array<{ id: string; options: Record<string, unknown> }>;
}
export interface Dashboard {
  uid: string;
  title: string;
  panels: DashPanel[];
  templating: { list: Array<Record<string, unknown> & { name: string; type: string }> };
  annotations?: { list: Array<{ expr?: string; name: string }> };
  [k: string]: unknown;
}

export function loadDashboard(rel: string): Dashboard {
  return JSON.parse(readFileSync(join(REPO, rel), 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): DashPanel[] {
  const out: DashPanel[] = [];
  const walk = (ps: DashPanel[]) => {
    for (const p of ps) {
      out.push(p);
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

export interface Expr {
  where: string;
  expr: string;
}

/** The PromQL of a dashboard: panel targets, annotation queries and variable queries (label_values' selector). */
export function dashboardExpressions(d: Dashboard): Expr[] {
  const out: Expr[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? [])
      if (t.expr) out.push({ where: `${d.uid} panel "${p.title}" ${t.refId}`, expr: t.expr });
  }
  for (const a of d.annotations?.list ?? [])
    if (a.expr) out.push({ where: `${d.uid} annotation "${a.name}"`, expr: a.expr });
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : String((v.query as { query: string }).query);
    const m = /^label_values\((.*),\s*[a-zA-Z_]+\)$/.exec(q.trim());
    out.push({ where: `${d.uid} variable ${v.name}`, expr: m ? m[1] : q });
  }
  return out;
}

/** Grafana's variables replaced by values a plain Prometheus accepts. */
export function substituteGrafana(expr: string, rateInterval = '1m'): string {
  return expr
    .replace(/\$\{?__rate_interval\}?/g, rateInterval)
    .replace(/\$\{?__range\}?/g, '1h')
    .replace(/\$\{?__interval\}?/g, '15s')
    .replace(/\$\{?(job|instance|spool)(:[a-z]+)?\}?/g, '.+');
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/** The expression with string literals, label matchers and range/subquery brackets emptied. */
export function stripPromql(expr: string): string {
  return expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]');
}

/** Metric names (and recording-rule names) an expression selects. */
export function metricNames(expr: string): string[] {
  const s = stripPromql(expr).replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const id = m[0];
    const after = s.slice((m.index ?? 0) + id.length).trimStart();
    if (after.startsWith('(')) continue; // a function
    if (KEYWORDS.has(id.toLowerCase())) continue;
    if (/^[0-9]/.test(id)) continue;
    const before = s.slice(0, m.index ?? 0);
    if (/[0-9.]$/.test(before)) continue; // the exponent or unit of a number
    names.add(id);
  }
  return [...names];
}

/** For each `*_total` name in the expression, the function whose argument it is directly in (or null). */
export function counterContexts(expr: string): Array<{ name: string; fn: string | null }> {
  const s = stripPromql(expr);
  const out: Array<{ name: string; fn: string | null }> = [];
  const stack: Array<string | null> = [];
  const re = /[a-zA-Z_:][a-zA-Z0-9_:]*|\(|\)/g;
  let prevIdent: string | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const tok = m[0];
    if (tok === '(') {
      stack.push(prevIdent);
      prevIdent = null;
    } else if (tok === ')') {
      stack.pop();
      prevIdent = null;
    } else {
      if (/_total$/.test(tok)) {
        const after = s.slice(m.index + tok.length).trimStart();
        if (!after.startsWith('('))
          out.push({ name: tok, fn: stack.length ? stack[stack.length - 1] : null });
      }
      prevIdent = tok;
      // an aggregation's `by (...)` opens a parenthesis that is not a function call
      if (/^(by|without|on|ignoring|group_left|group_right)$/.test(tok)) prevIdent = `#${tok}`;
    }
  }
  return out;
}

/** The range given to each call of `fn` in the expression, e.g. `$__rate_interval` for rate(x[$__rate_interval]). */
export function rangesOf(expr: string, fn: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`\\b${fn}\\s*\\(`, 'g');
  for (let m = re.exec(expr); m !== null; m = re.exec(expr)) {
    let depth = 1;
    let i = m.index + m[0].length;
    const start = i;
    for (; i < expr.length && depth > 0; i++) {
      if (expr[i] === '(') depth++;
      else if (expr[i] === ')') depth--;
    }
    const arg = expr.slice(start, i - 1);
    const r = /\[([^\]]*)\]\s*$/.exec(arg);
    out.push(r ? r[1] : '');
  }
  return out;
}
