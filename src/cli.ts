#!/usr/bin/env node
// Argument parsing and dispatch only.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, toYaml } from './config.js';
import { LockError } from './guard/flag.js';
import { loadWebConfig, WebConfigError } from './http/web-config.js';
import { createLogger, type Level, LEVELS } from './log.js';
import { parseDuration } from './util/duration.js';
import { VERSION } from './version.js';

const USAGE = `usage: spool-guard <command> [flags]

commands:
  run [--config FILE] [--spool DIR] [--flag-file FILE] [--web.listen-address HOST:PORT] [--log.level L]
  check-config --config FILE
  status [--url URL] [--json]
  defer on|off|auto [--name SPOOL] [--for DURATION] [--url URL] [--token-file FILE]
  save --spool DIR --to DIR [--keep N] [--force] [--json]
  restore --from DIR --spool DIR [--force] [--json]
  demo [--web.listen-address HOST:PORT]
  version

environment: SPOOL_GUARD_CONFIG, SPOOL_GUARD_TOKEN, SPOOL_GUARD_URL`;

class UsageError extends Error {}

function parse(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
): { values: Record<string, any>; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values as Record<string, any>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

function defaultUrl(): string {
  return process.env.SPOOL_GUARD_URL ?? 'http://127.0.0.1:9935';
}

async function cmdRun(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    config: { type: 'string' },
    spool: { type: 'string' },
    'flag-file': { type: 'string' },
    'web.listen-address': { type: 'string' },
    'log.level': { type: 'string' },
  });
  if (positionals.length) throw new UsageError(`run: unexpected argument ${positionals[0]}`);
  const level = (values['log.level'] ?? 'info') as Level;
  if (!LEVELS.includes(level)) throw new UsageError(`--log.level: expected one of ${LEVELS.join(', ')}`);
  const configFile = values.config ?? (values.spool ? null : (process.env.SPOOL_GUARD_CONFIG ?? null));
  const log = createLogger(level);
  const { Agent } = await import('./agent.js');
  const agent = new Agent({
    configFile,
    overrides: {
      spool: values.spool,
      flagFile: values['flag-file'],
      listenAddress: values['web.listen-address'],
      logLevel: values['log.level'],
    },
    log,
    watchConfig: true,
  });
  log.level = agent.cfg.log.level;
  log.info('starting spool-guard', {
    version: VERSION,
    spools: agent.cfg.spools.map((s) => s.name).join(','),
  });
  await agent.start();
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info('stopping; the flag files stay as they are', { signal: sig });
      void agent.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

function cmdCheckConfig(args: string[]): number {
  const { values } = parse(args, { config: { type: 'string' } });
  const file = values.config ?? process.env.SPOOL_GUARD_CONFIG;
  if (!file) throw new UsageError('--config: required');
  const cfg = loadConfig(file);
  if (cfg.web.configFile) loadWebConfig(cfg.web.configFile);
  process.stdout.write(toYaml(cfg));
  return 0;
}

async function fetchJson(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

async function cmdStatus(args: string[]): Promise<number> {
  const { values } = parse(args, { url: { type: 'string' }, json: { type: 'boolean' } });
  const base = (values.url ?? defaultUrl()).replace(/\/+$/, '');
  let r: { status: number; body: any };
  try {
    r = await fetchJson(`${base}/api/v1/status`);
  } catch (e) {
    process.stderr.write(
      `spool-guard status: ${base} unreachable: ${(e as Error).cause ?? (e as Error).message}\n`,
    );
    return 1;
  }
  if (r.status !== 200) {
    process.stderr.write(`spool-guard status: ${base} answered ${r.status}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(r.body, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [];
  for (const s of r.body.spools ?? []) {
    const fs = s.filesystem;
    const pct = (x: number | null | undefined) =>
      x === null || x === undefined ? 'n/a' : `${(x * 100).toFixed(1)}%`;
    out.push(
      `${s.name}: ${s.defer.active ? `DEFERRING (${s.defer.reasons.join(',') || 'unknown'})` : 'accepting'}` +
        `${s.up ? '' : ` [DOWN: ${s.error}]`}` +
        `  bytes ${pct(fs?.used_bytes_ratio)}  inodes ${pct(fs?.used_inodes_ratio)}` +
        `  queue ${s.queue?.messages ?? 'n/a'}  frozen ${s.queue?.frozen ?? 'n/a'}` +
        `${s.override ? `  override ${s.override.mode}${s.override.until ? ` until ${new Date(s.override.until * 1000).toISOString()}` : ''}` : ''}` +
        `${s.complete ? '' : '  (bytes/frozen still being counted)'}`,
    );
  }
  for (const p of r.body.peers ?? [])
    out.push(`peer ${p.name} (${p.role}): ${p.up === null ? 'pending' : p.up ? 'up' : 'DOWN'}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

async function cmdDefer(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    name: { type: 'string' },
    for: { type: 'string' },
    url: { type: 'string' },
    'token-file': { type: 'string' },
  });
  const mode = positionals[0];
  if (mode !== 'on' && mode !== 'off' && mode !== 'auto')
    throw new UsageError('defer: expected on, off or auto');
  let ttl: number | undefined;
  if (values.for !== undefined) {
    ttl = parseDuration(values.for);
    if (Number.isNaN(ttl) || ttl <= 0)
      throw new UsageError(`--for: expected a duration such as 30m, got ${values.for}`);
  }
  if (mode === 'off' && ttl === undefined) throw new UsageError('--for: required with "off" (at most 24h)');
  if (mode === 'off' && ttl! > 86400) throw new UsageError('--for: at most 24h with "off"');
  let token = process.env.SPOOL_GUARD_TOKEN;
  if (values['token-file']) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (e) {
      throw new UsageError(`--token-file: cannot read: ${(e as Error).message}`);
    }
  }
  if (!token) throw new UsageError('--token-file or SPOOL_GUARD_TOKEN: a token is required');
  const base = (values.url ?? defaultUrl()).replace(/\/+$/, '');
  let r: { status: number; body: any };
  try {
    r = await fetchJson(`${base}/api/v1/defer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        mode,
        ...(values.name ? { spool: values.name } : {}),
        ...(ttl ? { ttl_seconds: ttl } : {}),
      }),
    });
  } catch (e) {
    process.stderr.write(
      `spool-guard defer: ${base} unreachable: ${(e as Error).cause ?? (e as Error).message}\n`,
    );
    return 1;
  }
  if (r.status !== 200) {
    process.stderr.write(`spool-guard defer: ${r.status}: ${r.body?.error ?? r.body}\n`);
    return 1;
  }
  const s = r.body;
  process.stdout.write(
    `${s.name}: ${s.defer.active ? `DEFERRING (${s.defer.reasons.join(',')})` : 'accepting'}` +
      `${s.override ? `, override ${s.override.mode}${s.override.until ? ` until ${new Date(s.override.until * 1000).toISOString()}` : ''}` : ', automatic'}\n`,
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return cmd ? 0 : 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  try {
    switch (cmd) {
      case 'run':
        return await cmdRun(rest);
      case 'check-config':
        return cmdCheckConfig(rest);
      case 'status':
        return await cmdStatus(rest);
      case 'defer':
        return await cmdDefer(rest);
      case 'save':
        return await (await import('./durability/command.js')).runSave(rest);
      case 'restore':
        return await (await import('./durability/command.js')).runRestore(rest);
      case 'demo':
        return await (await import('./demo.js')).runDemo(rest);
      case 'version':
      case '--version':
        process.stdout.write(`spool-guard ${VERSION}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}; see spool-guard --help`);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const p of e.problems) process.stderr.write(`spool-guard: config: ${p}\n`);
      return 2;
    }
    if (e instanceof WebConfigError) {
      for (const p of e.problems) process.stderr.write(`spool-guard: config: ${p}\n`);
      return 2;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`spool-guard: ${e.message}\n`);
      return 2;
    }
    if (e instanceof LockError) {
      process.stderr.write(`spool-guard: ${e.message}\n`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    process.stderr.write(
      `spool-guard: ${err.code === 'EADDRINUSE' ? `listen address in use: ${err.message}` : (err.stack ?? String(e))}\n`,
    );
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (code !== 0 || process.argv[2] !== 'run') setImmediate(() => process.exit(code));
  },
  (e) => {
    process.stderr.write(`spool-guard: ${String(e)}\n`);
    process.exit(1);
  },
);
