// Durations as operators write them: `30s`, `5m`, `1h`, `1h30m`, `250ms`, or a plain number of seconds.
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds in `s`, or NaN when it is not a duration. */
export function parseDuration(s: string | number): number {
  if (typeof s === 'number') return Number.isFinite(s) && s >= 0 ? s : Number.NaN;
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null = re.exec(t);
  while (m !== null) {
    total += Number(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
    m = re.exec(t);
  }
  return pos === t.length && pos > 0 ? total : Number.NaN;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
}
