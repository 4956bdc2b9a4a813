// Configuration: YAML file + flags + environment, validated once against one JSON Schema
// (ajv, allErrors, unknown keys rejected), then normalised and deep-frozen.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import cron from 'node-cron';
import YAML from 'yaml';
import { parseHostPort } from './guard/smtp-probe.js';
import { type Level, LEVELS } from './log.js';
import { parseDuration } from './util/duration.js';

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

export type DeferReason = 'bytes' | 'inodes' | 'queue' | 'time_to_full' | 'memory' | 'manual';
export const DEFER_REASONS: readonly DeferReason[] = [
  'bytes',
  'inodes',
  'queue',
  'time_to_full',
  'memory',
  'manual',
];

export interface EnterThresholds {
  usedBytesRatio: number | null;
  usedInodesRatio: number | null;
  queueMessages: number | null;
  timeToFullSeconds: number | null;
  memoryAvailableBytes: number | null;
}
export interface ReleaseThresholds {
  usedBytesRatio: number | null;
  usedInodesRatio: number | null;
  queueMessages: number | null;
}
export interface SpoolConfig {
  name: string;
  path: string;
  mta: 'exim';
  flagFile: string;
  relayAddress: string | null;
  relaySourceAddress: string | null;
  relayCheckIntervalSeconds: number;
  defer: EnterThresholds;
  release: ReleaseThresholds;
  minDeferSeconds: number;
  hooks: { onDefer: string[] | null; onRelease: string[] | null; timeoutSeconds: number };
}
export interface ProbeConfig {
  name: string;
  role: 'retry_host' | 'backup_mx';
  address: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  sourceAddress: string | null;
}
export interface Config {
  /** the file this came from, when any */
  file: string | null;
  web: { listenAddress: string; configFile: string | null; telemetryPath: string };
  api: { tokenFile: string | null };
  log: { level: Level };
  rescan: { schedule: string };
  probes: ProbeConfig[];
  spools: SpoolConfig[];
}

const duration = { type: ['string', 'number'] };
const ratio = { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 };
const count = { type: ['integer', 'null'], minimum: 1 };
const argv = { type: 'array', items: { type: 'string' }, minItems: 1 };
const hostPort = { type: 'string', minLength: 1 };

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    web: {
      type: 'object',
      additionalProperties: false,
      properties: {
        listen_address: hostPort,
        config_file: { type: 'string', minLength: 1 },
        telemetry_path: { type: 'string', pattern: '^/' },
      },
    },
    api: {
      type: 'object',
      additionalProperties: false,
      properties: { token_file: { type: 'string', minLength: 1 } },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: { level: { enum: LEVELS } },
    },
    rescan: {
      type: 'object',
      additionalProperties: false,
      properties: { schedule: { type: 'string', minLength: 1 } },
    },
    probes: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'role', 'address'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.:-]+$' },
          role: { enum: ['retry_host', 'backup_mx'] },
          address: hostPort,
          interval: duration,
          timeout: duration,
          source_address: { type: 'string', minLength: 1 },
        },
      },
    },
    spools: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'path'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.:-]+$' },
          path: { type: 'string', minLength: 1 },
          mta: { enum: ['exim'] },
          flag_file: { type: 'string', minLength: 1 },
          relay_address: hostPort,
          relay_source_address: { type: 'string', minLength: 1 },
          relay_check_interval: duration,
          defer: {
            type: 'object',
            additionalProperties: false,
            properties: {
              used_bytes_ratio: ratio,
              used_inodes_ratio: ratio,
              queue_messages: count,
              time_to_full_seconds: { type: ['number', 'null'], exclusiveMinimum: 0 },
              memory_available_bytes: { type: ['integer', 'null'], minimum: 1 },
            },
          },
          release: {
            type: 'object',
            additionalProperties: false,
            properties: {
              used_bytes_ratio: { type: ['number', 'null'], minimum: 0, exclusiveMaximum: 1 },
              used_inodes_ratio: { type: ['number', 'null'], minimum: 0, exclusiveMaximum: 1 },
              queue_messages: { type: ['integer', 'null'], minimum: 0 },
            },
          },
          min_defer_seconds: { type: 'number', minimum: 0 },
          hooks: {
            type: 'object',
            additionalProperties: false,
            properties: { on_defer: argv, on_release: argv, timeout: duration },
          },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(configSchema);

function keyPath(e: ErrorObject): string {
  const p = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s}`))
    .join('')
    .replace(/^\./, '');
  return p || '(top level)';
}

function describe(e: ErrorObject): string {
  const at = keyPath(e);
  const join = (k: string) => (at === '(top level)' ? k : `${at}.${k}`);
  switch (e.keyword) {
    case 'additionalProperties':
      return `${join(String(e.params.additionalProperty))}: unknown key`;
    case 'required':
      return `${join(String(e.params.missingProperty))}: required key missing`;
    case 'enum':
      return `${at}: expected one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'type':
      return `${at}: expected ${String(e.params.type).replace(',', ' or ')}`;
    default:
      return `${at}: ${e.message ?? 'invalid'}`;
  }
}

export interface Overrides {
  spool?: string;
  flagFile?: string;
  listenAddress?: string;
  logLevel?: string;
}

export const DEFAULT_LISTEN = ':9935';
export const DEFAULT_FLAG_DIR = '/run/spool-guard';

/** Reads and validates a config file (or none), applies overrides, returns a frozen Config. Throws ConfigError. */
export function loadConfig(file: string | null, overrides: Overrides = {}): Config {
  let raw: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError([`config file ${file}: cannot read: ${(e as Error).message}`]);
    }
    try {
      const doc = YAML.parseDocument(text, { uniqueKeys: true });
      if (doc.errors.length)
        throw new ConfigError(doc.errors.map((er) => `config file ${file}: ${er.message}`));
      raw = doc.toJS() ?? {};
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError([`config file ${file}: ${(e as Error).message}`]);
    }
  } else if (!overrides.spool) {
    throw new ConfigError(['--config or --spool: one of them is required']);
  }
  return buildConfig(raw, file, overrides);
}

export function buildConfig(raw: unknown, file: string | null, overrides: Overrides = {}): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(['(top level): expected a mapping']);
  }
  const r = structuredClone(raw) as Record<string, any>;
  if (overrides.spool) {
    if (file && r.spools) {
      throw new ConfigError(['--spool: cannot be combined with a config file that lists spools']);
    }
    // paths given on the command line are relative to the cwd, not to the config file
    r.spools = [{ name: 'default', path: resolve(overrides.spool), flag_file: overrides.flagFile }];
    if (overrides.flagFile) r.spools[0].flag_file = resolve(overrides.flagFile);
    else delete r.spools[0].flag_file;
  } else if (overrides.flagFile) {
    throw new ConfigError(['--flag-file: only valid together with --spool']);
  }
  const problems: string[] = [];
  if (!validate(r)) {
    for (const e of validate.errors ?? []) {
      const d = describe(e);
      if (!problems.includes(d)) problems.push(d);
    }
    throw new ConfigError(problems);
  }
  if (!r.spools) problems.push('spools: required key missing (at least one spool)');
  const base = file ? dirname(resolve(file)) : process.cwd();
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const dur = (v: unknown, key: string, def: number): number => {
    if (v === undefined) return def;
    const s = parseDuration(v as string);
    if (Number.isNaN(s))
      problems.push(`${key}: expected a duration such as 30s, 5m or 1h, got ${JSON.stringify(v)}`);
    else if (s < 0.1) problems.push(`${key}: expected at least 100ms, got ${JSON.stringify(v)}`);
    return s;
  };
  const listen = overrides.listenAddress ?? r.web?.listen_address ?? DEFAULT_LISTEN;
  if (!parseListenAddress(listen))
    problems.push(`web.listen_address: expected HOST:PORT, got ${JSON.stringify(listen)}`);
  const level = (overrides.logLevel ?? r.log?.level ?? 'info') as Level;
  if (!LEVELS.includes(level)) problems.push(`log.level: expected one of ${LEVELS.join(', ')}`);
  const schedule = r.rescan?.schedule ?? '* * * * *';
  if (!cron.validate(schedule))
    problems.push(`rescan.schedule: expected a cron expression, got ${JSON.stringify(schedule)}`);

  const names = new Set<string>();
  const flags = new Map<string, string>();
  const spools: SpoolConfig[] = (r.spools ?? []).map((s: any, i: number): SpoolConfig => {
    const at = `spools[${i}]`;
    if (names.has(s.name)) problems.push(`${at}.name: duplicate spool name ${JSON.stringify(s.name)}`);
    names.add(s.name);
    const flagFile = abs(s.flag_file ?? `${DEFAULT_FLAG_DIR}/${s.name}.defer`);
    if (flags.has(flagFile)) problems.push(`${at}.flag_file: already used by spool ${flags.get(flagFile)}`);
    flags.set(flagFile, s.name);
    const d = s.defer ?? {};
    const rl = s.release ?? {};
    const pick = <T>(o: any, k: string, def: T): T | null => (k in o ? o[k] : def);
    const defer: EnterThresholds = {
      usedBytesRatio: pick(d, 'used_bytes_ratio', 0.8),
      usedInodesRatio: pick(d, 'used_inodes_ratio', 0.8),
      queueMessages: pick(d, 'queue_messages', null),
      timeToFullSeconds: pick(d, 'time_to_full_seconds', 300),
      memoryAvailableBytes: pick(d, 'memory_available_bytes', null),
    };
    // default release line: 0.2 below the enter line, but never below half of it (so it can be reached)
    const below = (x: number | null) =>
      x === null ? null : Math.round(Math.max(x - 0.2, x / 2) * 1000) / 1000;
    const release: ReleaseThresholds = {
      usedBytesRatio: pick(rl, 'used_bytes_ratio', below(defer.usedBytesRatio)),
      usedInodesRatio: pick(rl, 'used_inodes_ratio', below(defer.usedInodesRatio)),
      queueMessages: pick(
        rl,
        'queue_messages',
        defer.queueMessages === null ? null : Math.floor(defer.queueMessages / 2),
      ),
    };
    const pairs: [keyof ReleaseThresholds, string][] = [
      ['usedBytesRatio', 'used_bytes_ratio'],
      ['usedInodesRatio', 'used_inodes_ratio'],
      ['queueMessages', 'queue_messages'],
    ];
    for (const [k, key] of pairs) {
      const en = defer[k];
      const re = release[k];
      if (re !== null && en === null)
        problems.push(`${at}.release.${key}: set, but ${at}.defer.${key} is not`);
      if (re !== null && en !== null && re >= en) {
        problems.push(`${at}.release.${key}: expected below ${at}.defer.${key} (${en}), got ${re}`);
      }
    }
    // peer addresses are checked with the parser the SMTP probe dials with
    if (s.relay_address && !parseHostPort(s.relay_address)) {
      problems.push(`${at}.relay_address: expected HOST:PORT, got ${JSON.stringify(s.relay_address)}`);
    }
    const hooks = s.hooks ?? {};
    return {
      name: s.name,
      path: abs(s.path),
      mta: 'exim',
      flagFile,
      relayAddress: s.relay_address ?? null,
      relaySourceAddress: s.relay_source_address ?? null,
      relayCheckIntervalSeconds: dur(s.relay_check_interval, `${at}.relay_check_interval`, 30),
      defer,
      release,
      minDeferSeconds: s.min_defer_seconds ?? 60,
      hooks: {
        onDefer: hooks.on_defer ?? null,
        onRelease: hooks.on_release ?? null,
        timeoutSeconds: dur(hooks.timeout, `${at}.hooks.timeout`, 10),
      },
    };
  });
  const probeNames = new Set<string>();
  const probes: ProbeConfig[] = (r.probes ?? []).map((p: any, i: number): ProbeConfig => {
    const at = `probes[${i}]`;
    if (probeNames.has(p.name)) problems.push(`${at}.name: duplicate probe name ${JSON.stringify(p.name)}`);
    probeNames.add(p.name);
    if (!parseHostPort(p.address))
      problems.push(`${at}.address: expected HOST:PORT, got ${JSON.stringify(p.address)}`);
    return {
      name: p.name,
      role: p.role,
      address: p.address,
      intervalSeconds: dur(p.interval, `${at}.interval`, 30),
      timeoutSeconds: dur(p.timeout, `${at}.timeout`, 10),
      sourceAddress: p.source_address ?? null,
    };
  });
  if (problems.length) throw new ConfigError(problems);
  const cfg: Config = {
    file: file ? resolve(file) : null,
    web: {
      listenAddress: listen,
      configFile: r.web?.config_file ? abs(r.web.config_file) : null,
      telemetryPath: r.web?.telemetry_path ?? '/metrics',
    },
    api: { tokenFile: r.api?.token_file ? abs(r.api.token_file) : null },
    log: { level },
    rescan: { schedule },
    probes,
    spools,
  };
  return deepFreeze(cfg);
}

/** A listen address: `HOST:PORT`, `[v6]:PORT` or `:PORT` (every interface); port 0 picks a free one. */
export function parseListenAddress(s: string): { host: string | undefined; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? undefined : host, port };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** The effective config in the file format (what `check-config` prints). */
export function toYaml(cfg: Config): string {
  const spool = (s: SpoolConfig) => ({
    name: s.name,
    path: s.path,
    mta: s.mta,
    flag_file: s.flagFile,
    ...(s.relayAddress ? { relay_address: s.relayAddress } : {}),
    ...(s.relaySourceAddress ? { relay_source_address: s.relaySourceAddress } : {}),
    relay_check_interval: `${s.relayCheckIntervalSeconds}s`,
    defer: {
      used_bytes_ratio: s.defer.usedBytesRatio,
      used_inodes_ratio: s.defer.usedInodesRatio,
      queue_messages: s.defer.queueMessages,
      time_to_full_seconds: s.defer.timeToFullSeconds,
      memory_available_bytes: s.defer.memoryAvailableBytes,
    },
    release: {
      used_bytes_ratio: s.release.usedBytesRatio,
      used_inodes_ratio: s.release.usedInodesRatio,
      queue_messages: s.release.queueMessages,
    },
    min_defer_seconds: s.minDeferSeconds,
    hooks: {
      ...(s.hooks.onDefer ? { on_defer: s.hooks.onDefer } : {}),
      ...(s.hooks.onRelease ? { on_release: s.hooks.onRelease } : {}),
      timeout: `${s.hooks.timeoutSeconds}s`,
    },
  });
  return YAML.stringify({
    web: {
      listen_address: cfg.web.listenAddress,
      ...(cfg.web.configFile ? { config_file: cfg.web.configFile } : {}),
      telemetry_path: cfg.web.telemetryPath,
    },
    api: cfg.api.tokenFile ? { token_file: cfg.api.tokenFile } : {},
    log: { level: cfg.log.level },
    rescan: { schedule: cfg.rescan.schedule },
    probes: cfg.probes.map((p) => ({
      name: p.name,
      role: p.role,
      address: p.address,
      interval: `${p.intervalSeconds}s`,
      timeout: `${p.timeoutSeconds}s`,
      ...(p.sourceAddress ? { source_address: p.sourceAddress } : {}),
    })),
    spools: cfg.spools.map(spool),
  });
}
