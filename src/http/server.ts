// The HTTP side: landing page, /metrics, health, status and the control API.
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { SpoolGuard } from '../guard/guard.js';
import { MAX_OFF_SECONDS } from '../guard/guard.js';
import type { Logger } from '../log.js';
import { renderLanding } from './landing.js';
import { isLoopback, tlsServerOptions, type WebSecurity } from './web-config.js';

export interface ServerDeps {
  log: Logger;
  registry: Registry;
  telemetryPath: string;
  guards(): SpoolGuard[];
  status(): unknown;
  peers(): { name: string; role: string; up: boolean | null }[];
  /** the bearer token, or null when none is configured */
  token(): string | null;
  web: WebSecurity | null;
  version: string;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function tokenMatches(expected: string, given: string): boolean {
  return timingSafeEqual(digest(expected), digest(given));
}

export interface DeferBody {
  spool?: unknown;
  mode?: unknown;
  ttl_seconds?: unknown;
}

/** Validates a POST /api/v1/defer body; returns an error string or the parsed request. */
export function parseDeferBody(
  body: unknown,
  spools: string[],
): { error: string; status: 400 | 404 } | { spool: string; mode: 'on' | 'off' | 'auto'; ttl: number | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return { error: 'body: expected a JSON object', status: 400 };
  const b = body as DeferBody;
  for (const k of Object.keys(b))
    if (!['spool', 'mode', 'ttl_seconds'].includes(k)) return { error: `${k}: unknown key`, status: 400 };
  if (b.mode !== 'on' && b.mode !== 'off' && b.mode !== 'auto')
    return { error: 'mode: expected "on", "off" or "auto"', status: 400 };
  let ttl: number | null = null;
  if (b.ttl_seconds !== undefined && b.ttl_seconds !== null) {
    if (typeof b.ttl_seconds !== 'number' || !Number.isFinite(b.ttl_seconds) || b.ttl_seconds <= 0) {
      return { error: 'ttl_seconds: expected a positive number of seconds', status: 400 };
    }
    ttl = b.ttl_seconds;
  }
  if (b.mode === 'off') {
    if (ttl === null) return { error: 'ttl_seconds: required for mode "off" (at most 86400)', status: 400 };
    if (ttl > MAX_OFF_SECONDS) return { error: 'ttl_seconds: at most 86400 for mode "off"', status: 400 };
  }
  if (b.mode === 'auto') ttl = null;
  let spool: string;
  if (b.spool === undefined) {
    if (spools.length !== 1)
      return { error: 'spool: required when several spools are configured', status: 400 };
    spool = spools[0];
  } else if (typeof b.spool !== 'string') return { error: 'spool: expected a string', status: 400 };
  else spool = b.spool;
  if (!spools.includes(spool)) return { error: `spool: unknown spool ${JSON.stringify(spool)}`, status: 404 };
  return { spool, mode: b.mode, ttl };
}

export async function createServer(d: ServerDeps): Promise<FastifyInstance> {
  const tls = d.web?.current() ? tlsServerOptions(d.web.current()!) : null;
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    connectionTimeout: 30_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    ...(tls ? { https: tls } : {}),
  }) as unknown as FastifyInstance;
  const isTls = tls !== null;
  const exempt = (method: string, url: string) => {
    const path = url.split('?')[0];
    return path === '/healthz' || path === '/readyz' || (method === 'POST' && path === '/api/v1/defer');
  };
  if (d.web) app.addHook('onRequest', d.web.hook(exempt));

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) d.log.error('request failed', { err: err.message });
    reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({ error: 'not found' });
  });

  app.get('/', async (_req, reply) => {
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
    return renderLanding(d.guards(), d.version, d.telemetryPath, d.peers());
  });
  app.get(d.telemetryPath, async (_req, reply) => {
    const body = await d.registry.metrics();
    reply.type(d.registry.contentType);
    return body;
  });
  app.get('/healthz', async () => 'OK\n');
  app.get('/readyz', async (_req, reply) => {
    const pending = d.guards().filter((g) => !(g.lastObservation ?? g.source.observe()).listed);
    if (pending.length) {
      reply.code(503);
      return `not ready: ${pending.map((g) => g.name).join(', ')}\n`;
    }
    return 'OK\n';
  });
  app.get('/api/v1/status', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return d.status();
  });

  const authorize = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!isTls && !isLoopback(req.socket.remoteAddress)) {
      return reply
        .code(403)
        .send({ error: 'control over plain HTTP answers loopback clients only; configure TLS' });
    }
    const token = d.token();
    if (token === null) return reply.code(403).send({ error: 'no API token configured (api.token_file)' });
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    if (!m || !tokenMatches(token, m[1])) {
      reply.header('www-authenticate', 'Bearer realm="spool-guard"');
      return reply.code(401).send({ error: 'missing or wrong bearer token' });
    }
  };
  app.post('/api/v1/defer', { onRequest: authorize }, async (req, reply) => {
    const guards = d.guards();
    const r = parseDeferBody(
      req.body,
      guards.map((g) => g.name),
    );
    if ('error' in r) return reply.code(r.status).send({ error: r.error });
    const g = guards.find((x) => x.name === r.spool)!;
    g.setOverride(r.mode, r.ttl);
    d.log.info('override set through the API', {
      spool: g.name,
      mode: r.mode,
      ttl: r.ttl ?? undefined,
      client: req.socket.remoteAddress,
    });
    return g.status();
  });
  return app;
}
