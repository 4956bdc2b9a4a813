// Runs the built agent (dist/cli.js) as a child process, the way an operator does.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error('dist/cli.js missing: run `npm run build` first (npm test does)');
}

export async function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export interface RunningAgent {
  proc: ChildProcess;
  url: string;
  port: number;
  log: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  metrics(): Promise<string>;
  status(): Promise<any>;
}

export async function startAgent(
  args: string[],
  opts: { port?: number; env?: Record<string, string>; waitReady?: boolean } = {},
): Promise<RunningAgent> {
  assertBuilt();
  const port = opts.port ?? (await freeLoopbackPort());
  const proc = spawn(process.execPath, [CLI, 'run', ...args, '--web.listen-address', `127.0.0.1:${port}`], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  const a: RunningAgent = {
    proc,
    url,
    port,
    log: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    async metrics() {
      return (await fetch(`${url}/metrics`)).text();
    },
    async status() {
      return (await fetch(`${url}/api/v1/status`)).json();
    },
  };
  if (opts.waitReady !== false) {
    await waitFor(
      `agent ready on ${url}\n${out}`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}: ${out}`);
        return (await fetch(`${url}/readyz`)).status === 200;
      },
      { timeoutMs: 15_000, intervalMs: 25 },
    );
  }
  return a;
}

/** The value of one series in a text exposition, or undefined. */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls: Record<string, string> = {};
    for (const p of (m[2] ?? '').slice(1, -1).matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g))
      ls[p[1]] = p[2];
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
      return m[3] === '+Inf'
        ? Number.POSITIVE_INFINITY
        : m[3] === '-Inf'
          ? Number.NEGATIVE_INFINITY
          : Number(m[3]);
    }
  }
  return undefined;
}

export function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  assertBuilt();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
