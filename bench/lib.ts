// Shared pieces of the benchmarks: spawning, timing, medians, RSS/CPU of a process.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Wall time of a shell command in ms (median over runs). */
export function timeShell(cmd: string, runs: number): number {
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`${cmd} failed`);
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

export function shell(cmd: string): string {
  return execFileSync('sh', ['-c', cmd]).toString();
}

export function rssBytes(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** user+system CPU seconds used by a process so far. */
export function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const hz = 100;
  return (Number(f[11]) + Number(f[12])) / hz;
}

export const fmtMs = (ms: number) => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
export const fmtRatio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

export function table(rows: Row[]): string {
  const head = '| figure | spool-guard | baseline | ratio |\n|---|---|---|---|\n';
  const c = (x: string) => x.replace(/\|/g, '\\|');
  return (
    head +
    rows.map((r) => `| ${c(r.figure)} | ${c(r.value)} | ${c(r.baseline)} | ${c(r.ratio)} |`).join('\n') +
    '\n'
  );
}
