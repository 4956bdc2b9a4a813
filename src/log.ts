// A small logfmt logger in the style of Prometheus exporters:
//   ts=2026-12-03T12:00:00.000Z level=info msg="defer mode entered" spool=exim reasons=bytes
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
export const LEVELS = Object.keys(ORDER) as Level[];

export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
  level: Level;
}

function quote(v: string): string {
  return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
}

export function formatLine(level: Level, msg: string, fields: Fields, now = new Date()): string {
  let s = `ts=${now.toISOString()} level=${level} msg=${quote(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    s += ` ${k}=${quote(String(v))}`;
  }
  return s;
}

export function createLogger(
  level: Level = 'info',
  base: Fields = {},
  write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Logger {
  const state = { level };
  const make = (bound: Fields): Logger => {
    const emit =
      (lv: Level) =>
      (msg: string, fields: Fields = {}) => {
        if (ORDER[lv] < ORDER[state.level]) return;
        write(formatLine(lv, msg, { ...bound, ...fields }));
      };
    return {
      debug: emit('debug'),
      info: emit('info'),
      warn: emit('warn'),
      error: emit('error'),
      child: (f) => make({ ...bound, ...f }),
      get level() {
        return state.level;
      },
      set level(l: Level) {
        state.level = l;
      },
    };
  };
  return make(base);
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger = createLogger('error', {}, () => {});
