// Web security: the exporter-toolkit web config file, real TLS (openssl-made
// certificates), client certificates, basic auth with its cache, and reloads.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import Fastify, { type FastifyInstance } from 'fastify';
import { createLogger, silentLogger } from '../../src/log.js';
import { BasicAuthVerifier } from '../../src/http/web-auth.js';
import {
  WebConfigError,
  WebSecurity,
  isLoopback,
  loadWebConfig,
  parseBasic,
  tlsServerOptions,
} from '../../src/http/web-config.js';
import { waitFor } from '../helpers/wait.js';

// ---------------------------------------------------------------------------
// Certificates: a CA, two server certificates, a client signed by the CA, a
// self-signed client.

let dir: string;
const pem: Record<string, string> = {};

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function ecKey(name: string): void {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', `${name}.key`);
}

function signed(name: string, cn: string, ext: string): void {
  ecKey(name);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.pem`,
  );
}

function makeCerts(): void {
  ecKey('ca');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=spool-guard test CA',
    '-days',
    '2',
    '-out',
    'ca.pem',
  );
  const server =
    'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
  signed('server1', 'server one', server);
  signed('server2', 'server two', server);
  signed(
    'client',
    'scraper',
    'basicConstraints=CA:FALSE\nsubjectAltName=DNS:scraper.example,email:ops@example.net\nextendedKeyUsage=clientAuth\n',
  );
  ecKey('rogue');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'rogue.key',
    '-subj',
    '/CN=rogue',
    '-days',
    '2',
    '-out',
    'rogue.pem',
  );
  for (const n of ['ca', 'server1', 'server2', 'client', 'rogue']) {
    pem[`${n}.pem`] = readFileSync(join(dir, `${n}.pem`), 'utf8');
    pem[`${n}.key`] = readFileSync(join(dir, `${n}.key`), 'utf8');
  }
}

const fingerprint = (name: string) => new X509Certificate(pem[name]).fingerprint256;

let n = 0;
function configFile(text: string, sub = ''): string {
  const d = sub ? join(dir, sub) : dir;
  mkdirSync(d, { recursive: true });
  const p = join(d, `web-${++n}.yml`);
  writeFileSync(p, text);
  return p;
}

function problemsOf(text: string): string[] {
  try {
    loadWebConfig(configFile(text));
  } catch (e) {
    assert.ok(e instanceof WebConfigError, String(e));
    return e.problems;
  }
  assert.fail('expected a WebConfigError');
}

function hasProblem(problems: string[], prefix: string, fragment: string): void {
  assert.ok(
    problems.some((p) => p.startsWith(prefix) && p.includes(fragment)),
    `no problem "${prefix}... ${fragment}" in:\n${problems.join('\n')}`,
  );
}

// bcrypt hashes (cost 4 keeps the test fast; the cache test counts calls, not time).
let aliceHash: string;
let bobHash: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-webcfg-'));
  makeCerts();
  aliceHash = bcrypt.hashSync('alice-pw', 4);
  bobHash = bcrypt.hashSync('bob-pw', 4).replace(/^\$2b\$/, '$2y$'); // htpasswd's spelling
});
after(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------
// A real fastify server and clients.

const EXEMPT = (method: string, url: string) =>
  (method === 'GET' && (url === '/healthz' || url === '/readyz')) ||
  (method === 'POST' && url === '/api/v1/defer');

interface Running {
  app: FastifyInstance;
  url: string;
  port: number;
}

async function serve(sec: WebSecurity, opts: { http2?: boolean } = {}): Promise<Running> {
  const cfg = sec.current();
  const tlsOpts = cfg ? tlsServerOptions(cfg) : null;
  // biome-ignore lint/suspicious/noExplicitAny: fastify's overloads do not take a computed https/http2 choice
  const fopts: any = { logger: false };
  if (tlsOpts && opts.http2) {
    fopts.http2 = true;
    fopts.https = { ...tlsOpts, allowHTTP1: true };
  } else if (tlsOpts) fopts.https = tlsOpts;
  const app = Fastify(fopts) as unknown as FastifyInstance;
  app.addHook('onRequest', sec.hook(EXEMPT));
  app.get('/metrics', async () => 'metrics\n');
  app.get('/healthz', async () => 'ok\n');
  app.get('/readyz', async () => 'ready\n');
  app.post('/api/v1/defer', async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  if (tlsOpts) sec.attach(app.server as unknown as tls.Server);
  const port = (app.server.address() as AddressInfo).port;
  return { app, port, url: `${tlsOpts ? 'https' : 'http'}://127.0.0.1:${port}` };
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  peer?: string; // server certificate fingerprint
}

function get(
  base: string,
  path: string,
  o: { auth?: string; method?: string; cert?: string; key?: string; maxVersion?: tls.SecureVersion } = {},
): Promise<Res> {
  const u = new URL(path, base);
  const headers: Record<string, string> = {};
  if (o.auth) headers.authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`;
  if (o.method === 'POST') headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const lib = u.protocol === 'https:' ? https : http;
    const req = lib.request(
      u,
      {
        method: o.method ?? 'GET',
        headers,
        agent: false,
        ca: pem['ca.pem'],
        cert: o.cert,
        key: o.key,
        maxVersion: o.maxVersion,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => {
          const sock = res.socket as tls.TLSSocket;
          const peer =
            typeof sock.getPeerX509Certificate === 'function' ? sock.getPeerX509Certificate() : undefined;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, peer: peer?.fingerprint256 });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end(o.method === 'POST' ? '{}' : undefined);
  });
}

// The server's certificate as a fresh TLS client sees it.
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: pem['ca.pem'] }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

function tlsConfig(extra = '', cert = 'server1'): string {
  return `tls_server_config:\n  cert_file: ${cert}.pem\n  key_file: ${cert}.key\n${extra}`;
}

// ---------------------------------------------------------------------------

describe('loadWebConfig', () => {
  test('a complete file: relative paths against its directory, defaults, headers, users', () => {
    mkdirSync(join(dir, 'etc', 'tls'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'tls', 'c.pem'), pem['server1.pem']);
    writeFileSync(join(dir, 'etc', 'tls', 'k.key'), pem['server1.key'], { mode: 0o600 });
    writeFileSync(join(dir, 'etc', 'tls', 'ca.pem'), pem['ca.pem']);
    const p = configFile(
      `tls_server_config:
  cert_file: tls/c.pem
  key_file: tls/k.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: tls/ca.pem
  min_version: TLS13
http_server_config:
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Content-Security-Policy: ""
basic_auth_users:
  alice: ${aliceHash}
`,
      'etc',
    );
    const cfg = loadWebConfig(p);
    assert.equal(cfg.path, p);
    assert.equal(cfg.tls?.certFile, join(dir, 'etc', 'tls', 'c.pem'));
    assert.equal(cfg.tls?.clientCaFile, join(dir, 'etc', 'tls', 'ca.pem'));
    assert.equal(cfg.tls?.minVersion, 'TLSv1.3');
    assert.equal(cfg.tls?.maxVersion, 'TLSv1.3');
    assert.equal(cfg.tls?.clientAuthType, 'RequireAndVerifyClientCert');
    assert.deepEqual(cfg.headers, { 'X-Frame-Options': 'deny', 'X-Content-Type-Options': 'nosniff' });
    assert.equal(cfg.basicAuthUsers.get('alice'), aliceHash);
    assert.equal(cfg.http2, true);
    assert.deepEqual(
      cfg.files.sort(),
      [p, ...['c.pem', 'k.key', 'ca.pem'].map((f) => join(dir, 'etc', 'tls', f))].sort(),
    );
    const o = tlsServerOptions(cfg)!;
    assert.equal(o.requestCert, true);
    assert.equal(o.rejectUnauthorized, true);
    assert.equal(o.ca, pem['ca.pem']);
  });

  test('an empty file and a file with only users mean no TLS', () => {
    const empty = loadWebConfig(configFile(''));
    assert.equal(empty.tls, undefined);
    assert.equal(empty.basicAuthUsers.size, 0);
    assert.equal(tlsServerOptions(empty), null);
    const users = loadWebConfig(configFile(`basic_auth_users:\n  bob: ${bobHash}\n`));
    assert.equal(users.http2, false, 'no HTTP/2 without TLS');
    assert.ok(users.warnings.some((w) => w.includes('clear text')));
  });

  test('unknown keys name their path', () => {
    hasProblem(problemsOf('tls_config:\n  cert_file: x\n'), 'web_config.tls_config:', 'unknown key');
    hasProblem(
      problemsOf(tlsConfig('  cert_fil: x\n')),
      'web_config.tls_server_config.cert_fil:',
      'unknown key (expected one of cert, key',
    );
    hasProblem(
      problemsOf('http_server_config:\n  http3: true\n'),
      'web_config.http_server_config.http3:',
      'unknown key',
    );
  });

  test('bad client_auth_type, and policies that need (or forbid) a CA', () => {
    hasProblem(
      problemsOf(tlsConfig('  client_auth_type: RequireAndVerify\n')),
      'web_config.tls_server_config.client_auth_type:',
      'expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, got "RequireAndVerify"',
    );
    hasProblem(
      problemsOf(tlsConfig('  client_auth_type: RequireAndVerifyClientCert\n')),
      'web_config.tls_server_config.client_ca_file:',
      'required with client_auth_type RequireAndVerifyClientCert',
    );
    hasProblem(
      problemsOf(tlsConfig('  client_ca_file: ca.pem\n')),
      'web_config.tls_server_config.client_auth_type:',
      'when client CAs are configured',
    );
    hasProblem(
      problemsOf(
        tlsConfig(
          '  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n',
        ),
      ),
      'web_config.tls_server_config.client_allowed_sans:',
      'requires client_auth_type',
    );
  });

  test('missing, unreadable or mismatched certificate files', () => {
    hasProblem(
      problemsOf('tls_server_config:\n  cert_file: server1.pem\n  key_file: nowhere.key\n'),
      'web_config.tls_server_config.key_file:',
      `cannot read ${join(dir, 'nowhere.key')} (ENOENT)`,
    );
    hasProblem(
      problemsOf('tls_server_config:\n  cert_file: server1.pem\n'),
      'web_config.tls_server_config.key_file:',
      'required',
    );
    hasProblem(
      problemsOf('tls_server_config:\n  cert_file: server1.pem\n  key_file: server2.key\n'),
      'web_config.tls_server_config.key_file:',
      'does not match',
    );
    hasProblem(
      problemsOf('tls_server_config:\n  cert_file: server1.key\n  key_file: server1.key\n'),
      'web_config.tls_server_config.cert_file:',
      'expected a PEM certificate',
    );
    hasProblem(
      problemsOf('tls_server_config:\n  min_version: TLS13\n'),
      'web_config.tls_server_config.cert_file:',
      'required',
    );
  });

  test('bad bcrypt hashes and user names', () => {
    const ps = problemsOf(
      `basic_auth_users:\n  alice: secret\n  bob: ${bobHash.slice(0, 50)}\n  "a:b": ${aliceHash}\n`,
    );
    hasProblem(ps, 'web_config.basic_auth_users.alice:', 'expected a bcrypt hash');
    hasProblem(ps, 'web_config.basic_auth_users.bob:', 'expected a bcrypt hash');
    hasProblem(ps, 'web_config.basic_auth_users.a:b:', 'no ":"');
    assert.equal(ps.length, 3, 'every problem reported at once');
  });

  test('headers restricted to the toolkit set and values', () => {
    const ps = problemsOf(
      'http_server_config:\n  headers:\n    X-Powered-By: me\n    X-Frame-Options: allow\n',
    );
    hasProblem(ps, 'web_config.http_server_config.headers.X-Powered-By:', 'can not be configured');
    hasProblem(
      ps,
      'web_config.http_server_config.headers.X-Frame-Options:',
      'expected one of deny, sameorigin',
    );
  });

  test('versions, cipher suites, curves, YAML errors, types', () => {
    hasProblem(
      problemsOf(tlsConfig('  min_version: TLS14\n')),
      'web_config.tls_server_config.min_version:',
      'TLS13',
    );
    hasProblem(
      problemsOf(tlsConfig('  min_version: TLS13\n  max_version: TLS12\n')),
      'web_config.tls_server_config.min_version:',
      'not above max_version',
    );
    hasProblem(
      problemsOf(tlsConfig('  cipher_suites: [TLS_FOO]\n')),
      'web_config.tls_server_config.cipher_suites[0]:',
      'Go TLS 1.2 cipher suite',
    );
    hasProblem(
      problemsOf(tlsConfig('  curve_preferences: [P256]\n')),
      'web_config.tls_server_config.curve_preferences[0]:',
      'CurveP256',
    );
    hasProblem(
      problemsOf('basic_auth_users: [a, b]\n'),
      'web_config.basic_auth_users:',
      'expected a mapping',
    );
    hasProblem(
      problemsOf('http_server_config:\n  http2: yes\n'),
      'web_config.http_server_config.http2:',
      'true or false',
    );
    hasProblem(problemsOf('a: [\n'), 'web_config:', 'invalid YAML');
    hasProblem(problemsOf('a: 1\na: 2\n'), 'web_config:', 'invalid YAML');

    const cfg = loadWebConfig(
      configFile(
        tlsConfig(
          '  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n',
        ),
      ),
    );
    assert.match(cfg.tls?.ciphers ?? '', /ECDHE-ECDSA-AES128-GCM-SHA256$/);
    assert.equal(cfg.tls?.ecdhCurve, 'X25519:P-256');
    assert.equal(cfg.tls?.preferServerCipherSuites, false);
    assert.ok(
      cfg.warnings.some(
        (w) => w.startsWith('web_config.tls_server_config.cipher_suites[1]:') && w.includes('ignored'),
      ),
    );
  });
});

describe('TLS', () => {
  test('serves with the configured certificate; TLS 1.2 by default', async () => {
    const sec = new WebSecurity({ path: configFile(tlsConfig()), log: silentLogger });
    const s = await serve(sec);
    try {
      const r = await get(s.url, '/metrics');
      assert.equal(r.status, 200);
      assert.equal(r.peer, fingerprint('server1.pem'));
      const r12 = await get(s.url, '/metrics', { maxVersion: 'TLSv1.2' });
      assert.equal(r12.status, 200);
      // plain HTTP to a TLS port gets no answer from the app
      await assert.rejects(get(`http://127.0.0.1:${s.port}`, '/metrics'));
    } finally {
      await s.app.close();
      await sec.close();
    }
  });

  test('min_version TLS13 refuses a TLS 1.2 client', async () => {
    const sec = new WebSecurity({ path: configFile(tlsConfig('  min_version: TLS13\n')), log: silentLogger });
    const s = await serve(sec);
    try {
      await assert.rejects(get(s.url, '/metrics', { maxVersion: 'TLSv1.2' }), /version|alert|EPROTO/i);
      assert.equal((await get(s.url, '/metrics')).status, 200);
    } finally {
      await s.app.close();
    }
  });

  test('cipher_suites are applied to TLS 1.2', async () => {
    const sec = new WebSecurity({
      path: configFile(
        tlsConfig('  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n'),
      ),
      log: silentLogger,
    });
    const s = await serve(sec);
    try {
      const cipher = await new Promise<string>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port: s.port, ca: pem['ca.pem'] }, () => {
          resolve(c.getCipher().name);
          c.end();
        });
        c.on('error', reject);
      });
      assert.equal(cipher, 'ECDHE-ECDSA-CHACHA20-POLY1305');
    } finally {
      await s.app.close();
    }
  });

  test('RequireAndVerifyClientCert: no certificate and a foreign one are refused, the CA-signed one is served', async () => {
    const sec = new WebSecurity({
      path: configFile(
        tlsConfig('  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n'),
      ),
      log: silentLogger,
    });
    const s = await serve(sec);
    try {
      await assert.rejects(get(s.url, '/healthz'));
      await assert.rejects(get(s.url, '/healthz', { cert: pem['rogue.pem'], key: pem['rogue.key'] }));
      const ok = await get(s.url, '/healthz', { cert: pem['client.pem'], key: pem['client.key'] });
      assert.equal(ok.status, 200);
    } finally {
      await s.app.close();
    }
  });

  test('RequireAnyClientCert and client_allowed_sans are enforced per request (403)', async () => {
    const sec = new WebSecurity({
      path: configFile(
        tlsConfig(
          '  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [other.example]\n',
        ),
      ),
      log: silentLogger,
    });
    const s = await serve(sec);
    try {
      const r = await get(s.url, '/healthz', { cert: pem['client.pem'], key: pem['client.key'] });
      assert.equal(r.status, 403);
      assert.match(r.body, /no allowed SAN/);
    } finally {
      await s.app.close();
    }
    const any = new WebSecurity({
      path: configFile(
        tlsConfig('  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [ops@example.net]\n'),
      ),
      log: silentLogger,
    });
    const s2 = await serve(any);
    try {
      const none = await get(s2.url, '/healthz');
      assert.equal(none.status, 403);
      assert.match(none.body, /client certificate required/);
      assert.equal(
        (await get(s2.url, '/healthz', { cert: pem['client.pem'], key: pem['client.key'] })).status,
        200,
      );
      assert.equal(
        (await get(s2.url, '/healthz', { cert: pem['rogue.pem'], key: pem['rogue.key'] })).status,
        403,
      );
      assert.equal(any.stats().clientCertRejects, 2);
    } finally {
      await s2.app.close();
    }
  });

  test('VerifyClientCertIfGiven: none is fine, an untrusted one is refused', async () => {
    const sec = new WebSecurity({
      path: configFile(tlsConfig('  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n')),
      log: silentLogger,
    });
    const s = await serve(sec);
    try {
      assert.equal((await get(s.url, '/healthz')).status, 200);
      assert.equal(
        (await get(s.url, '/healthz', { cert: pem['client.pem'], key: pem['client.key'] })).status,
        200,
      );
      assert.equal(
        (await get(s.url, '/healthz', { cert: pem['rogue.pem'], key: pem['rogue.key'] })).status,
        403,
      );
    } finally {
      await s.app.close();
    }
  });

  test('HTTP/2: the hook sees the client certificate and basic auth through the h2 compat layer', async () => {
    const sec = new WebSecurity({
      path: configFile(
        tlsConfig(`  client_auth_type: RequireAnyClientCert\nbasic_auth_users:\n  alice: ${aliceHash}\n`),
      ),
      log: silentLogger,
    });
    const s = await serve(sec, { http2: true });
    const h2get = (withCert: boolean, auth?: string) =>
      new Promise<number>((resolve, reject) => {
        const session = http2.connect(s.url, {
          ca: pem['ca.pem'],
          ...(withCert ? { cert: pem['client.pem'], key: pem['client.key'] } : {}),
        });
        session.on('error', reject);
        const headers: http2.OutgoingHttpHeaders = { ':path': '/metrics' };
        if (auth) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
        const req = session.request(headers);
        req.on('response', (h) => {
          req.resume();
          req.on('end', () => {
            session.close();
            resolve(Number(h[':status']));
          });
        });
        req.on('error', reject);
        req.end();
      });
    try {
      assert.equal(await h2get(false, 'alice:alice-pw'), 403);
      assert.equal(await h2get(true), 401);
      assert.equal(await h2get(true, 'alice:alice-pw'), 200);
    } finally {
      await s.app.close();
    }
  });
});

describe('basic auth', () => {
  test('401 without or with wrong credentials, 200 with them; exempt routes open; headers on every answer', async () => {
    const sec = new WebSecurity({
      path: configFile(
        `basic_auth_users:\n  alice: ${aliceHash}\n  bob: ${bobHash}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=300\n`,
      ),
      log: silentLogger,
    });
    const s = await serve(sec);
    try {
      const none = await get(s.url, '/metrics');
      assert.equal(none.status, 401);
      assert.equal(none.headers['www-authenticate'], 'Basic realm="spool-guard"');
      assert.equal(none.headers['x-content-type-options'], 'nosniff');
      assert.equal((await get(s.url, '/metrics', { auth: 'alice:wrong' })).status, 401);
      assert.equal((await get(s.url, '/metrics', { auth: 'mallory:alice-pw' })).status, 401);
      assert.equal((await get(s.url, '/metrics', { auth: 'bob:alice-pw' })).status, 401);
      const ok = await get(s.url, '/metrics', { auth: 'alice:alice-pw' });
      assert.equal(ok.status, 200);
      assert.equal(ok.body, 'metrics\n');
      assert.equal(ok.headers['strict-transport-security'], 'max-age=300');
      assert.equal((await get(s.url, '/metrics', { auth: 'bob:bob-pw' })).status, 200, '$2y$ hashes work');
      for (const [method, path] of [
        ['GET', '/healthz'],
        ['GET', '/readyz'],
        ['GET', '/healthz?verbose=1'],
        ['POST', '/api/v1/defer'],
      ]) {
        const r = await get(s.url, path, { method });
        assert.equal(r.status, 200, `${method} ${path}`);
        assert.equal(r.headers['x-content-type-options'], 'nosniff');
      }
      assert.equal((await get(s.url, '/nowhere')).status, 401, 'unknown routes are not exempt');
      assert.equal(
        (await get(s.url, '/nowhere', { auth: 'alice:alice-pw' })).headers['x-content-type-options'],
        'nosniff',
      );
    } finally {
      await s.app.close();
    }
  });

  test('the cache: 200 authenticated requests cost one bcrypt; wrong passwords and unknown users are cached briefly', async () => {
    const sec = new WebSecurity({
      path: configFile(`basic_auth_users:\n  alice: ${aliceHash}\n`),
      log: silentLogger,
    });
    const s = await serve(sec);
    try {
      // 20 at once before anything is cached: they share one computation.
      const burst = await Promise.all(
        Array.from({ length: 20 }, () => get(s.url, '/metrics', { auth: 'alice:alice-pw' })),
      );
      assert.ok(burst.every((r) => r.status === 200));
      assert.equal(sec.bcryptCalls, 1);
      for (let i = 0; i < 180; i++)
        assert.equal((await get(s.url, '/metrics', { auth: 'alice:alice-pw' })).status, 200);
      assert.equal(sec.bcryptCalls, 1, '200 requests, one bcrypt');

      for (let i = 0; i < 20; i++)
        assert.equal((await get(s.url, '/metrics', { auth: 'alice:nope' })).status, 401);
      assert.equal(sec.bcryptCalls, 2, 'a wrong password is checked once, then remembered');
      for (let i = 0; i < 5; i++) assert.equal((await get(s.url, '/metrics', { auth: 'eve:x' })).status, 401);
      assert.equal(sec.bcryptCalls, 3, 'an unknown user pays one (dummy) bcrypt like a known one');
      assert.equal(sec.stats().authFailures, 25);

      // A reload drops the cache.
      assert.equal(sec.reload(), true);
      assert.equal((await get(s.url, '/metrics', { auth: 'alice:alice-pw' })).status, 200);
      assert.equal(sec.bcryptCalls, 4);
    } finally {
      await s.app.close();
    }
  });

  test('verifier: negative entries expire; bounded; a user change mid-flight is decided against the new users', async () => {
    let now = 1_000_000;
    const v = new BasicAuthVerifier(new Map([['alice', aliceHash]]), {
      now: () => now,
      negativeTtlMs: 1000,
      maxPositive: 2,
    });
    assert.equal(await v.verify('alice', 'bad'), 'denied');
    assert.equal(await v.verify('alice', 'bad'), 'denied');
    assert.equal(v.bcryptCalls, 1);
    now += 1001;
    assert.equal(await v.verify('alice', 'bad'), 'denied');
    assert.equal(v.bcryptCalls, 2, 'expired negative entry');

    const many = new BasicAuthVerifier(
      new Map([
        ['a', bcrypt.hashSync('1', 4)],
        ['b', bcrypt.hashSync('2', 4)],
        ['c', bcrypt.hashSync('3', 4)],
      ]),
      { maxPositive: 2 },
    );
    for (const [u, p] of [
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ])
      assert.equal(await many.verify(u, p), 'ok');
    assert.equal(many.bcryptCalls, 3);
    assert.equal(await many.verify('a', '1'), 'ok');
    assert.equal(many.bcryptCalls, 4, 'the oldest entry was evicted');

    const flight = new BasicAuthVerifier(new Map([['alice', aliceHash]]));
    const pending = flight.verify('alice', 'alice-pw');
    flight.setUsers(new Map([['bob', bobHash]]));
    assert.equal(await pending, 'denied', 'alice was removed while her password was being checked');
  });

  test('parseBasic', () => {
    const b = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    assert.deepEqual(parseBasic(b('u:p:q')), { user: 'u', password: 'p:q' });
    assert.deepEqual(parseBasic(b('ü:ß')), { user: 'ü', password: 'ß' });
    assert.deepEqual(parseBasic(`basic  ${Buffer.from('u:').toString('base64')}`), {
      user: 'u',
      password: '',
    });
    assert.equal(parseBasic(undefined), null);
    assert.equal(parseBasic('Bearer abc'), null);
    assert.equal(parseBasic(b('nocolon')), null);
    assert.equal(parseBasic('Basic !!!'), null);
  });

  test('no web config: everything open, no headers', async () => {
    const sec = new WebSecurity({ log: silentLogger });
    assert.equal(sec.current(), null);
    assert.equal(sec.reload(), true);
    const s = await serve(sec);
    try {
      assert.equal((await get(s.url, '/metrics')).status, 200);
    } finally {
      await s.app.close();
    }
  });
});

describe('reload', () => {
  test('a file change swaps users and certificates; an invalid file keeps the old config', async () => {
    const lines: string[] = [];
    const log = createLogger('debug', {}, (l) => lines.push(l));
    const results: boolean[] = [];
    const sub = `reload-${Date.now()}`;
    mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, sub, 'tls.pem'), pem['server1.pem']);
    writeFileSync(join(dir, sub, 'tls.key'), pem['server1.key'], { mode: 0o600 });
    const path = configFile(`${tlsConfig('', 'tls')}basic_auth_users:\n  alice: ${aliceHash}\n`, sub);
    const sec = new WebSecurity({ path, log, onReload: (ok) => results.push(ok) });
    sec.watch();
    const s = await serve(sec);
    try {
      assert.equal((await get(s.url, '/metrics', { auth: 'alice:alice-pw' })).status, 200);
      assert.equal(await peerFingerprint(s.port), fingerprint('server1.pem'));

      // 1. users: alice out, bob in.
      writeFileSync(path, `${tlsConfig('', 'tls')}basic_auth_users:\n  bob: ${bobHash}\n`);
      await waitFor(
        'bob to be accepted',
        async () => (await get(s.url, '/metrics', { auth: 'bob:bob-pw' })).status === 200,
      );
      assert.equal((await get(s.url, '/metrics', { auth: 'alice:alice-pw' })).status, 401);
      assert.deepEqual(results, [true]);

      // 2. certificate renewed in place (the config file does not change): cert first, then key.
      const r0 = results.length;
      writeFileSync(join(dir, sub, 'tls.pem.tmp'), pem['server2.pem']);
      renameSync(join(dir, sub, 'tls.pem.tmp'), join(dir, sub, 'tls.pem'));
      writeFileSync(join(dir, sub, 'tls.key.tmp'), pem['server2.key']);
      renameSync(join(dir, sub, 'tls.key.tmp'), join(dir, sub, 'tls.key'));
      await waitFor(
        'the new certificate to be served',
        async () => (await peerFingerprint(s.port)) === fingerprint('server2.pem'),
      );
      assert.ok(results.slice(r0).at(-1), 'the last reload succeeded');
      assert.equal((await get(s.url, '/metrics', { auth: 'bob:bob-pw' })).status, 200);

      // 3. an invalid file: refused, logged, old config stays.
      const before = results.length;
      writeFileSync(
        path,
        `${tlsConfig('  client_auth_type: Sometimes\n', 'tls')}basic_auth_users:\n  carol: plain\n`,
      );
      await waitFor('the refused reload', () => results.length > before);
      assert.equal(results.at(-1), false);
      assert.ok(
        lines.some(
          (l) => l.includes('reload refused') && l.includes('web_config.tls_server_config.client_auth_type'),
        ),
      );
      assert.ok(lines.some((l) => l.includes('web_config.basic_auth_users.carol')));
      assert.equal(sec.current()?.basicAuthUsers.has('bob'), true);
      assert.equal((await get(s.url, '/metrics', { auth: 'bob:bob-pw' })).status, 200);
      assert.equal(await peerFingerprint(s.port), fingerprint('server2.pem'));

      // 4. removing TLS needs a restart: refused.
      writeFileSync(path, `basic_auth_users:\n  bob: ${bobHash}\n`);
      assert.equal(sec.reload(), false);
      assert.ok(sec.current()?.tls);

      // 5. fixed again, now requiring client certificates: applied to new connections.
      writeFileSync(join(dir, sub, 'ca.pem'), pem['ca.pem']);
      const b2 = results.length;
      writeFileSync(
        path,
        `${tlsConfig('  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n', 'tls')}basic_auth_users:\n  bob: ${bobHash}\n`,
      );
      await waitFor('the reload', () => results.length > b2 && results.at(-1) === true);
      await assert.rejects(get(s.url, '/metrics', { auth: 'bob:bob-pw' }));
      const withCert = await get(s.url, '/metrics', {
        auth: 'bob:bob-pw',
        cert: pem['client.pem'],
        key: pem['client.key'],
      });
      assert.equal(withCert.status, 200);
      assert.ok(sec.current()?.files.includes(join(dir, sub, 'ca.pem')), 'the CA file is watched now');
    } finally {
      await s.app.close();
      await sec.close();
    }
  });

  test('an invalid file at start throws WebConfigError', () => {
    assert.throws(
      () => new WebSecurity({ path: configFile('basic_auth_users:\n  x: y\n'), log: silentLogger }),
      (e: unknown) =>
        e instanceof WebConfigError && e.problems[0].startsWith('web_config.basic_auth_users.x:'),
    );
    assert.throws(
      () => new WebSecurity({ path: join(dir, 'absent.yml'), log: silentLogger }),
      /cannot read .*ENOENT/,
    );
  });
});

test('isLoopback', () => {
  for (const a of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1'])
    assert.equal(isLoopback(a), true, a);
  for (const a of [undefined, '', '10.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', 'localhost', 'fe80::1'])
    assert.equal(isLoopback(a), false, String(a));
});
