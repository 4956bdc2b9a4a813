// Exec hooks: argv arrays run without a shell, bounded by a timeout, never blocking the guard.
import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

export interface HookResult {
  ok: boolean;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  error?: string;
  ms: number;
}

export function runHook(
  argv: readonly string[],
  env: Record<string, string>,
  timeoutSeconds: number,
  log: Logger,
): Promise<HookResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    const done = (r: Omit<HookResult, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const res = { ...r, ms: performance.now() - t0 };
      if (!res.ok)
        log.error('hook failed', {
          hook: argv[0],
          code: r.code,
          signal: r.signal,
          timed_out: r.timedOut,
          err: r.error,
        });
      else log.info('hook ran', { hook: argv[0], ms: res.ms.toFixed(0) });
      resolve(res);
    };
    let child: import('node:child_process').ChildProcess;
    try {
      child = spawn(argv[0], argv.slice(1), {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true, // own process group, so a timeout kills what it started too
      });
    } catch (e) {
      resolve({ ok: false, code: null, signal: null, timedOut: false, error: String(e), ms: 0 });
      return;
    }
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutSeconds * 1000);
    child.on('error', (e) => done({ ok: false, code: null, signal: null, timedOut, error: e.message }));
    child.on('close', (code, signal) =>
      done({
        ok: code === 0 && !timedOut,
        code,
        signal,
        timedOut,
        error: stderr.trim().slice(0, 300) || undefined,
      }),
    );
  });
}
