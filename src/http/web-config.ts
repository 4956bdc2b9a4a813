// The web configuration file (`web.config_file`), in the Prometheus
// exporter-toolkit format, so one file serves spool-guard and the Go exporters
// beside it:
//
//   tls_server_config:   cert_file, key_file (or inline cert, key), client_auth_type,
//                        client_ca_file (or client_ca), client_allowed_sans,
//                        min_version, max_version, cipher_suites,
//                        prefer_server_cipher_suites, curve_preferences
//   http_server_config:  http2, headers (only the toolkit's five headers)
//   basic_auth_users:    { user: bcrypt hash }
//   rate_limit:          interval, burst
//
// Relative paths resolve against the web config file's directory. Unknown keys
// are errors. Certificates, keys and CAs are read and checked at load time, so
// a reload either yields a configuration that works or none at all.
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { SecureContextOptions, SecureVersion, Server as TlsServer, TLSSocket } from 'node:tls';
import { createSecureContext } from 'node:tls';
import { type FSWatcher, watch as chokidarWatch } from 'chokidar';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseDocument } from 'yaml';
import type { Logger } from '../log.js';
import { parseDuration } from '../util/duration.js';
import { BCRYPT_HASH, BasicAuthVerifier } from './web-auth.js';

export type ClientAuthType =
  | 'NoClientCert'
  | 'RequestClientCert'
  | 'RequireAnyClientCert'
  | 'VerifyClientCertIfGiven'
  | 'RequireAndVerifyClientCert';

export const CLIENT_AUTH_TYPES: readonly ClientAuthType[] = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
];

export interface WebTlsConfig {
  /** PEM contents, read when the file was loaded. */
  cert: string;
  key: string;
  clientCa?: string;
  /** Absolute paths of the files they came from (absent when inline). */
  certFile?: string;
  keyFile?: string;
  clientCaFile?: string;
  clientAuthType: ClientAuthType;
  minVersion: SecureVersion;
  maxVersion: SecureVersion;
  /** OpenSSL cipher list built from `cipher_suites`; absent means Node's default. */
  ciphers?: string;
  preferServerCipherSuites: boolean;
  /** OpenSSL curve list built from `curve_preferences`. */
  ecdhCurve?: string;
  /** Client certificates must carry one of these SANs (DNS, IP, email or URI); empty = any. */
  clientAllowedSans: string[];
  /** Leaf certificate facts, for logs. */
  fingerprint256: string;
  validTo: string;
}

export interface WebConfig {
  tls?: WebTlsConfig;
  /** user -> bcrypt hash; empty = no basic auth. */
  basicAuthUsers: Map<string, string>;
  /** Extra response headers (toolkit's allowed set only). */
  headers: Record<string, string>;
  /** Serve HTTP/2 (with HTTP/1.1 fallback): `http_server_config.http2` (default true) and TLS on. */
  http2: boolean;
  /** Token bucket over all requests: one token per `intervalMs`, up to `burst`. */
  rateLimit?: { intervalMs: number; burst: number };
  /** Absolute path of the web config file. */
  path: string;
  /** Files this configuration was read from (the file itself, cert, key, CA): what to watch. */
  files: string[];
  /** Things that work but an operator should know (insecure choices, ignored settings). */
  warnings: string[];
}

export class WebConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'WebConfigError';
    this.problems = problems;
  }
}

// ---------------------------------------------------------------------------
// Tables from the exporter toolkit (and Go's crypto/tls).

/** Headers the toolkit lets a web config set, with their allowed values (empty = any). */
const ALLOWED_HEADERS: Record<string, string[]> = {
  'Strict-Transport-Security': [],
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': [],
  'Content-Security-Policy': [],
};

const TLS_VERSIONS: Record<string, SecureVersion> = {
  TLS10: 'TLSv1',
  TLS11: 'TLSv1.1',
  TLS12: 'TLSv1.2',
  TLS13: 'TLSv1.3',
};
const VERSION_ORDER: SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** Go's configurable (TLS <= 1.2) cipher suite names -> OpenSSL names. */
const CIPHER_SUITES: Record<string, string> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  // Go's older spellings.
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};
/** TLS 1.3 suites: Go accepts the names but does not let them be configured; neither do we. */
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const TLS13_DEFAULT = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

const CURVES: Record<string, string> = {
  CurveP256: 'P-256',
  CurveP384: 'P-384',
  CurveP521: 'P-521',
  X25519: 'X25519',
};

const TOP_KEYS = ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit'];
const TLS_KEYS = [
  'cert',
  'key',
  'client_ca',
  'cert_file',
  'key_file',
  'client_auth_type',
  'client_ca_file',
  'client_allowed_sans',
  'min_version',
  'max_version',
  'cipher_suites',
  'prefer_server_cipher_suites',
  'curve_preferences',
];
const HTTP_KEYS = ['http2', 'headers'];
const RATE_KEYS = ['interval', 'burst'];

// ---------------------------------------------------------------------------
// Loading and validation.

type Obj = Record<string, unknown>;

class Checker {
  readonly problems: string[] = [];
  readonly warnings: string[] = [];
  readonly files: string[] = [];
  constructor(readonly dir: string) {}

  problem(path: string, what: string): void {
    this.problems.push(`web_config${path ? `.${path}` : ''}: ${what}`);
  }
  warn(path: string, what: string): void {
    this.warnings.push(`web_config${path ? `.${path}` : ''}: ${what}`);
  }

  /** A mapping (null and absent count as empty), with unknown keys reported. */
  mapping(v: unknown, path: string, keys: string[] | null): Obj | undefined {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.problem(path, `expected a mapping, got ${describe(v)}`);
      return undefined;
    }
    const o = v as Obj;
    if (keys) {
      for (const k of Object.keys(o)) {
        if (!keys.includes(k))
          this.problem(path ? `${path}.${k}` : k, `unknown key (expected one of ${keys.join(', ')})`);
      }
    }
    return o;
  }

  string(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      this.problem(path, `expected a string, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  bool(v: unknown, path: string, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.problem(path, `expected true or false, got ${describe(v)}`);
      return dflt;
    }
    return v;
  }

  strings(v: unknown, path: string): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.problem(path, `expected a list of strings, got ${describe(v)}`);
      return [];
    }
    const out: string[] = [];
    v.forEach((e, i) => {
      if (typeof e === 'string' && e !== '') out.push(e);
      else this.problem(`${path}[${i}]`, `expected a non-empty string, got ${describe(e)}`);
    });
    return out;
  }

  /** Read a file named relative to the web config's directory. */
  readFile(v: unknown, path: string, what: string): { file: string; text: string } | undefined {
    const name = this.string(v, path);
    if (name === undefined) return undefined;
    if (name === '') {
      this.problem(path, `expected the path of ${what}, got an empty string`);
      return undefined;
    }
    const file = isAbsolute(name) ? name : resolve(this.dir, name);
    try {
      const text = readFileSync(file, 'utf8');
      this.files.push(file);
      return { file, text };
    } catch (e) {
      this.problem(path, `expected a readable file holding ${what}, cannot read ${file} (${errText(e)})`);
      return undefined;
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return `${typeof v} ${String(v)}`;
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code && typeof err.code === 'string' && err.code.startsWith('E')) return err.code;
  return String(err?.message ?? e).split('\n')[0];
}

function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return text.match(re) ?? [];
}

/** Synchronously read and validate a web config file; throws WebConfigError listing every problem. */
export function loadWebConfig(path: string): WebConfig {
  const abs = resolve(path);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new WebConfigError([`web_config: cannot read ${abs} (${errText(e)})`]);
  }
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new WebConfigError(doc.errors.map((e) => `web_config: invalid YAML: ${e.message.split('\n')[0]}`));
  }
  const c = new Checker(dirname(abs));
  c.files.push(abs);
  const root = c.mapping(doc.toJS(), '', TOP_KEYS);
  if (!root) throw new WebConfigError(c.problems);

  const tlsCfg = parseTls(c, root.tls_server_config);
  const { http2, headers } = parseHttp(c, root.http_server_config);
  const basicAuthUsers = parseUsers(c, root.basic_auth_users);
  const rateLimit = parseRateLimit(c, root.rate_limit);

  if (c.problems.length > 0) throw new WebConfigError(c.problems);
  if (basicAuthUsers.size > 0 && !tlsCfg)
    c.warn('basic_auth_users', 'basic auth without tls_server_config sends passwords in clear text');
  return {
    tls: tlsCfg,
    basicAuthUsers,
    headers,
    http2: http2 && tlsCfg !== undefined,
    rateLimit,
    path: abs,
    files: [...new Set(c.files)],
    warnings: c.warnings,
  };
}

function parseTls(c: Checker, v: unknown): WebTlsConfig | undefined {
  const P = 'tls_server_config';
  const t = c.mapping(v, P, TLS_KEYS);
  if (!t || Object.keys(t).length === 0) return undefined;
  const before = c.problems.length;

  // Certificate and key: a file or inline PEM, exactly one of each.
  const source = (inline: string, fileKey: string, what: string, required: boolean) => {
    if (t[inline] != null && t[fileKey] != null) {
      c.problem(`${P}.${inline}`, `expected either ${inline} or ${fileKey}, not both`);
      return undefined;
    }
    if (t[fileKey] != null) return c.readFile(t[fileKey], `${P}.${fileKey}`, what);
    if (t[inline] != null) {
      const text = c.string(t[inline], `${P}.${inline}`);
      return text === undefined ? undefined : { file: undefined, text };
    }
    if (required) c.problem(`${P}.${fileKey}`, `required: the ${what} (or inline ${inline})`);
    return undefined;
  };
  const cert = source('cert', 'cert_file', 'a PEM certificate', true);
  const key = source('key', 'key_file', 'a PEM private key', true);
  const ca = source('client_ca', 'client_ca_file', 'PEM CA certificates', false);

  let leaf: X509Certificate | undefined;
  if (cert) {
    const blocks = pemBlocks(cert.text, 'CERTIFICATE');
    const at = `${P}.${cert.file ? 'cert_file' : 'cert'}`;
    try {
      if (blocks.length === 0) throw new Error('no PEM CERTIFICATE block');
      leaf = new X509Certificate(blocks[0]);
      for (const b of blocks.slice(1)) new X509Certificate(b);
    } catch (e) {
      c.problem(
        at,
        `expected a PEM certificate (chain)${cert.file ? ` in ${cert.file}` : ''}: ${errText(e)}`,
      );
    }
    if (leaf) {
      const now = Date.now();
      if (Date.parse(leaf.validTo) < now) c.warn(at, `certificate expired at ${leaf.validTo}`);
      else if (Date.parse(leaf.validFrom) > now) c.warn(at, `certificate not valid before ${leaf.validFrom}`);
    }
  }
  if (key) {
    const at = `${P}.${key.file ? 'key_file' : 'key'}`;
    try {
      const pk = createPrivateKey({ key: key.text, format: 'pem' });
      if (leaf && !leaf.checkPrivateKey(pk))
        c.problem(at, 'expected the private key of the certificate; it does not match');
    } catch (e) {
      c.problem(
        at,
        `expected an unencrypted PEM private key${key.file ? ` in ${key.file}` : ''}: ${errText(e)}`,
      );
    }
    if (key.file) {
      try {
        if (statSync(key.file).mode & 0o004) c.warn(`${P}.key_file`, `${key.file} is readable by every user`);
      } catch {
        // read above worked; a stat failure here is not worth a warning
      }
    }
  }
  if (ca) {
    const at = `${P}.${ca.file ? 'client_ca_file' : 'client_ca'}`;
    const blocks = pemBlocks(ca.text, 'CERTIFICATE');
    try {
      if (blocks.length === 0) throw new Error('no PEM CERTIFICATE block');
      for (const b of blocks) new X509Certificate(b);
    } catch (e) {
      c.problem(at, `expected PEM CA certificates${ca.file ? ` in ${ca.file}` : ''}: ${errText(e)}`);
    }
  }

  // Client authentication.
  let clientAuthType: ClientAuthType = 'NoClientCert';
  const cat = c.string(t.client_auth_type, `${P}.client_auth_type`);
  if (cat !== undefined && cat !== '') {
    const name = cat === 'RequireClientCert' ? 'RequireAnyClientCert' : cat; // toolkit's old spelling
    if ((CLIENT_AUTH_TYPES as readonly string[]).includes(name)) clientAuthType = name as ClientAuthType;
    else
      c.problem(
        `${P}.client_auth_type`,
        `expected one of ${CLIENT_AUTH_TYPES.join(', ')}, got ${JSON.stringify(cat)}`,
      );
  }
  if (ca && clientAuthType === 'NoClientCert')
    c.problem(
      `${P}.client_auth_type`,
      'expected a client auth policy (e.g. RequireAndVerifyClientCert) when client CAs are configured',
    );
  if (
    !ca &&
    (clientAuthType === 'VerifyClientCertIfGiven' || clientAuthType === 'RequireAndVerifyClientCert')
  )
    c.problem(
      `${P}.client_ca_file`,
      `required with client_auth_type ${clientAuthType}: the CA that signs client certificates`,
    );
  if (clientAuthType === 'RequestClientCert' || clientAuthType === 'RequireAnyClientCert')
    c.warn(
      `${P}.client_auth_type`,
      `${clientAuthType} does not verify client certificates; use RequireAndVerifyClientCert`,
    );

  const clientAllowedSans = c.strings(t.client_allowed_sans, `${P}.client_allowed_sans`);
  if (
    t.client_allowed_sans != null &&
    clientAuthType !== 'RequireAnyClientCert' &&
    clientAuthType !== 'RequireAndVerifyClientCert'
  )
    c.problem(
      `${P}.client_allowed_sans`,
      'requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert',
    );

  // Protocol versions.
  const version = (k: string, dflt: SecureVersion): SecureVersion => {
    const s = c.string(t[k], `${P}.${k}`);
    if (s === undefined || s === '') return dflt;
    const v = TLS_VERSIONS[s];
    if (!v) {
      c.problem(
        `${P}.${k}`,
        `expected one of ${Object.keys(TLS_VERSIONS).join(', ')}, got ${JSON.stringify(s)}`,
      );
      return dflt;
    }
    return v;
  };
  const minVersion = version('min_version', 'TLSv1.2');
  const maxVersion = version('max_version', 'TLSv1.3');
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion))
    c.problem(`${P}.min_version`, 'expected a version not above max_version');
  if (VERSION_ORDER.indexOf(minVersion) < 2) c.warn(`${P}.min_version`, 'TLS 1.0 and 1.1 are obsolete');

  // Cipher suites (TLS <= 1.2) and curves.
  const openssl: string[] = [];
  c.strings(t.cipher_suites, `${P}.cipher_suites`).forEach((name, i) => {
    if (CIPHER_SUITES[name]) openssl.push(CIPHER_SUITES[name]);
    else if (TLS13_SUITES.includes(name))
      c.warn(`${P}.cipher_suites[${i}]`, `${name} ignored: TLS 1.3 suites are not configurable`);
    else
      c.problem(
        `${P}.cipher_suites[${i}]`,
        `expected a Go TLS 1.2 cipher suite name such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, got ${JSON.stringify(name)}`,
      );
  });
  const ciphers = openssl.length > 0 ? `${TLS13_DEFAULT}:${openssl.join(':')}` : undefined;
  const preferServerCipherSuites = c.bool(
    t.prefer_server_cipher_suites,
    `${P}.prefer_server_cipher_suites`,
    true,
  );
  const curves: string[] = [];
  c.strings(t.curve_preferences, `${P}.curve_preferences`).forEach((name, i) => {
    if (CURVES[name]) curves.push(CURVES[name]);
    else
      c.problem(
        `${P}.curve_preferences[${i}]`,
        `expected one of ${Object.keys(CURVES).join(', ')}, got ${JSON.stringify(name)}`,
      );
  });

  if (c.problems.length > before || !cert || !key || !leaf) return undefined;
  const cfg: WebTlsConfig = {
    cert: cert.text,
    key: key.text,
    clientCa: ca?.text,
    certFile: cert.file,
    keyFile: key.file,
    clientCaFile: ca?.file,
    clientAuthType,
    minVersion,
    maxVersion,
    ciphers,
    preferServerCipherSuites,
    ecdhCurve: curves.length > 0 ? curves.join(':') : undefined,
    clientAllowedSans,
    fingerprint256: leaf.fingerprint256,
    validTo: leaf.validTo,
  };
  // Let OpenSSL have the last word (cipher list, curve names, key/cert pairing).
  try {
    const { requestCert: _r, rejectUnauthorized: _u, ...ctx } = tlsOptionsOf(cfg);
    createSecureContext(ctx);
  } catch (e) {
    c.problem(P, `OpenSSL refused the settings: ${errText(e)}`);
    return undefined;
  }
  return cfg;
}

function parseHttp(c: Checker, v: unknown): { http2: boolean; headers: Record<string, string> } {
  const P = 'http_server_config';
  const h = c.mapping(v, P, HTTP_KEYS);
  const headers: Record<string, string> = {};
  if (!h) return { http2: true, headers };
  const http2 = c.bool(h.http2, `${P}.http2`, true);
  const hs = c.mapping(h.headers, `${P}.headers`, null);
  for (const [name, value] of Object.entries(hs ?? {})) {
    const at = `${P}.headers.${name}`;
    const allowed = ALLOWED_HEADERS[name];
    if (!allowed) {
      c.problem(
        at,
        `header can not be configured (expected one of ${Object.keys(ALLOWED_HEADERS).join(', ')})`,
      );
      continue;
    }
    const s = c.string(value, at);
    if (s === undefined || s === '') continue; // blank = unset
    if (allowed.length > 0 && !allowed.includes(s)) {
      c.problem(at, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(s)}`);
      continue;
    }
    if (/[\r\n\0]/.test(s)) {
      c.problem(at, 'expected a single-line value');
      continue;
    }
    headers[name] = s;
  }
  return { http2, headers };
}

function parseUsers(c: Checker, v: unknown): Map<string, string> {
  const P = 'basic_auth_users';
  const users = new Map<string, string>();
  const m = c.mapping(v, P, null);
  for (const [user, hash] of Object.entries(m ?? {})) {
    const at = `${P}.${user}`;
    if (user === '' || user.includes(':')) {
      c.problem(at, 'expected a user name that is not empty and has no ":" (basic auth cannot carry it)');
      continue;
    }
    if (typeof hash !== 'string' || !BCRYPT_HASH.test(hash)) {
      c.problem(
        at,
        `expected a bcrypt hash ($2y$10$ and 53 more characters, as \`htpasswd -nBC 10 "" | tr -d ':\\n'\` prints), got ${
          typeof hash === 'string' ? `${hash.length} characters` : describe(hash)
        }`,
      );
      continue;
    }
    if (Number(hash.slice(4, 6)) > 13)
      c.warn(at, `bcrypt cost ${hash.slice(4, 6)} makes the first check of each password slow`);
    users.set(user, hash);
  }
  return users;
}

function parseRateLimit(c: Checker, v: unknown): WebConfig['rateLimit'] {
  const P = 'rate_limit';
  const r = c.mapping(v, P, RATE_KEYS);
  if (!r || Object.keys(r).length === 0) return undefined;
  let intervalMs = 0;
  if (r.interval != null) {
    const s = parseDuration(r.interval as string | number);
    if ((typeof r.interval !== 'string' && typeof r.interval !== 'number') || Number.isNaN(s))
      c.problem(`${P}.interval`, `expected a duration such as 100ms or 1s, got ${describe(r.interval)}`);
    else intervalMs = s * 1000;
  }
  let burst = 1;
  if (r.burst != null) {
    if (typeof r.burst !== 'number' || !Number.isInteger(r.burst) || r.burst < 1)
      c.problem(`${P}.burst`, `expected a whole number of at least 1, got ${describe(r.burst)}`);
    else burst = r.burst;
  }
  return intervalMs > 0 ? { intervalMs, burst } : undefined;
}

// ---------------------------------------------------------------------------
// TLS server options.

type TlsServerOptions = SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean };

function tlsOptionsOf(t: WebTlsConfig): TlsServerOptions {
  const opts: TlsServerOptions = {
    cert: t.cert,
    key: t.key,
    minVersion: t.minVersion,
    maxVersion: t.maxVersion,
    honorCipherOrder: t.preferServerCipherSuites,
    requestCert: t.clientAuthType !== 'NoClientCert',
    // Only this policy fails the handshake itself; the hook enforces the others.
    rejectUnauthorized: t.clientAuthType === 'RequireAndVerifyClientCert',
  };
  if (t.clientCa) opts.ca = t.clientCa;
  if (t.ciphers) opts.ciphers = t.ciphers;
  if (t.ecdhCurve) opts.ecdhCurve = t.ecdhCurve;
  return opts;
}

/** Options for `https.createServer` / fastify's `https`; null when the web config has no TLS. */
export function tlsServerOptions(cfg: WebConfig): TlsServerOptions | null {
  return cfg.tls ? tlsOptionsOf(cfg.tls) : null;
}

// ---------------------------------------------------------------------------
// Client-certificate checks (per request).

function normalizeSan(v: string): string {
  if (isIP(v) === 6) {
    try {
      return new URL(`http://[${v}]/`).hostname.slice(1, -1);
    } catch {
      return v;
    }
  }
  return v;
}

/** SAN values of a certificate: DNS names, IP addresses, e-mail addresses, URIs. */
export function certificateSans(cert: X509Certificate): string[] {
  const s = cert.subjectAltName;
  if (!s) return [];
  const out: string[] = [];
  // Node prints `DNS:a, IP Address:1.2.3.4, email:x@y, URI:u`, quoting (JSON) values with odd characters.
  const re = /(DNS|IP Address|email|URI|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (let m = re.exec(s); m !== null && m[0] !== ''; m = re.exec(s)) {
    if (!['DNS', 'IP Address', 'email', 'URI'].includes(m[1])) continue;
    let v = m[2];
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        continue;
      }
    }
    out.push(normalizeSan(v));
  }
  return out;
}

/** Why a request's client certificate is refused under `t`, or null when it is fine. */
function clientCertDenial(t: WebTlsConfig, socket: unknown): string | null {
  if (t.clientAuthType === 'NoClientCert' || t.clientAuthType === 'RequestClientCert') return null;
  const s = socket as Partial<TLSSocket> | undefined;
  if (!s || typeof s.getPeerX509Certificate !== 'function')
    return 'client certificate required (not a TLS connection)';
  const cert = s.getPeerX509Certificate();
  const verify = t.clientAuthType !== 'RequireAnyClientCert';
  if (!cert) {
    return t.clientAuthType === 'VerifyClientCertIfGiven' ? null : 'client certificate required';
  }
  if (verify && !s.authorized)
    return `client certificate not trusted (${String(s.authorizationError ?? 'unverified')})`;
  if (t.clientAllowedSans.length > 0) {
    const allowed = new Set(t.clientAllowedSans.map(normalizeSan));
    if (!certificateSans(cert).some((v) => allowed.has(v))) return 'client certificate has no allowed SAN';
  }
  return null;
}

// ---------------------------------------------------------------------------
// Loopback.

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x (::ffff:127.0.0.1). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  try {
    return LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// The live web security state: current config, reloads, the request hook.

export interface WebSecurityStats {
  bcryptCalls: number;
  authCacheHits: number;
  authFailures: number;
  clientCertRejects: number;
  rateLimited: number;
  reloads: number;
  reloadFailures: number;
}

export class WebSecurity {
  private cfg: WebConfig | null = null;
  private readonly path?: string;
  private readonly log: Logger;
  private readonly onReload?: (ok: boolean) => void;
  private readonly verifier: BasicAuthVerifier;
  private readonly servers = new Set<TlsServer>();
  private readonly tlsAtStart: boolean;
  private watcher?: FSWatcher;
  private watchedKey = '';
  private timer?: NodeJS.Timeout;
  private closed = false;
  private bucket = { tokens: 0, at: 0 };
  private readonly counts = {
    authFailures: 0,
    clientCertRejects: 0,
    rateLimited: 0,
    reloads: 0,
    reloadFailures: 0,
  };
  /** Debounce of file events (editors and cert renewals write several files). */
  debounceMs = 100;

  /** Loads the file at once; an invalid file throws WebConfigError (startup should fail, exit 2). */
  constructor(opts: { path?: string; log: import('../log.js').Logger; onReload?: (ok: boolean) => void }) {
    this.path = opts.path ? resolve(opts.path) : undefined;
    this.log = opts.log;
    this.onReload = opts.onReload;
    if (this.path) {
      this.cfg = loadWebConfig(this.path);
      for (const w of this.cfg.warnings) this.log.warn('web config', { problem: w });
    }
    this.tlsAtStart = this.cfg?.tls !== undefined;
    this.verifier = new BasicAuthVerifier(this.cfg?.basicAuthUsers ?? new Map());
    this.resetBucket();
  }

  current(): WebConfig | null {
    return this.cfg;
  }

  /** bcrypt comparisons run so far (the cache keeps this far below the request count). */
  get bcryptCalls(): number {
    return this.verifier.bcryptCalls;
  }

  stats(): WebSecurityStats {
    return { bcryptCalls: this.verifier.bcryptCalls, authCacheHits: this.verifier.cacheHits, ...this.counts };
  }

  /** Re-read the file. On any problem the old config stays, each problem is logged, and false is returned. */
  reload(): boolean {
    if (!this.path) return true;
    let next: WebConfig;
    try {
      next = loadWebConfig(this.path);
      if ((next.tls !== undefined) !== this.tlsAtStart)
        throw new WebConfigError([
          `web_config.tls_server_config: ${this.tlsAtStart ? 'removing' : 'adding'} TLS needs a restart of spool-guard`,
        ]);
    } catch (e) {
      const problems = e instanceof WebConfigError ? e.problems : [`web_config: ${errText(e)}`];
      for (const p of problems)
        this.log.error('web config reload refused, keeping the previous one', { problem: p });
      return this.finish(false);
    }
    const prev = this.cfg;
    const opts = tlsServerOptions(next);
    if (opts) {
      const applied: TlsServer[] = [];
      try {
        for (const s of this.servers) {
          applyTls(s, opts);
          applied.push(s);
        }
      } catch (e) {
        this.log.error('web config reload refused, keeping the previous one', {
          problem: `web_config.tls_server_config: ${errText(e)}`,
        });
        const old = prev && tlsServerOptions(prev);
        if (old) for (const s of applied) applyTls(s, old);
        return this.finish(false);
      }
    }
    if (prev && prev.http2 !== next.http2)
      this.log.warn('web config: a change of http_server_config.http2 takes effect at the next restart');
    this.cfg = next;
    this.verifier.setUsers(next.basicAuthUsers);
    this.resetBucket();
    for (const w of next.warnings) this.log.warn('web config', { problem: w });
    this.log.info('web config reloaded', {
      path: next.path,
      tls: next.tls !== undefined,
      client_auth: next.tls?.clientAuthType,
      cert_sha256: next.tls?.fingerprint256,
      basic_auth_users: next.basicAuthUsers.size,
    });
    if (this.watcher) this.rewatch();
    return this.finish(true);
  }

  private finish(ok: boolean): boolean {
    if (ok) this.counts.reloads++;
    else this.counts.reloadFailures++;
    try {
      this.onReload?.(ok);
    } catch (e) {
      this.log.error('web config onReload callback failed', { err: errText(e) });
    }
    return ok;
  }

  /** Watch the web config file and the files it names; reload when one changes. */
  watch(): void {
    if (!this.path || this.closed || this.watcher) return;
    this.rewatch();
  }

  private rewatch(): void {
    if (!this.path || this.closed) return;
    const files = new Set(this.cfg?.files ?? [this.path]);
    const key = [...files].sort().join('\n');
    if (key === this.watchedKey && this.watcher) return;
    this.watchedKey = key;
    const old = this.watcher;
    // Watch the directories too (depth 0, other entries ignored): a file
    // replaced by rename or a re-pointed symlink (certbot's live/) changes the
    // directory, not the file that was watched.
    const dirs = new Set([...files].map((f) => dirname(f)));
    const allowed = new Set([...files, ...dirs]);
    const w = chokidarWatch([...dirs], {
      ignoreInitial: true,
      depth: 0,
      ignored: (p: string) => !allowed.has(resolve(p)),
    });
    const schedule = (_event: string, p: string) => {
      if (!files.has(resolve(p))) return;
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.closed) this.reload();
      }, this.debounceMs);
    };
    w.on('all', schedule);
    w.on('error', (e) => this.log.warn('web config watch error', { err: errText(e) }));
    this.watcher = w;
    if (old) old.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.close();
  }

  /** Register a TLS server (https or http2 secure) so reloads can swap its certificate, key and CA. */
  attach(server: TlsServer): void {
    // A plain HTTP server may be handed over too; it has nothing to swap.
    if (typeof (server as Partial<TlsServer>).setSecureContext !== 'function') return;
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /**
   * fastify onRequest hook: adds the configured headers to every response;
   * applies the rate limit; refuses (403) a client whose certificate the
   * client_auth_type requires but which sent none, an untrusted one, or one
   * without an allowed SAN; then requires basic auth on every route for which
   * `exempt(method, path)` is false (`path` is the URL without its query string).
   */
  hook(
    exempt: (method: string, url: string) => boolean,
  ): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
    return async (req, reply) => {
      const cfg = this.cfg;
      if (!cfg) return;
      for (const [k, v] of Object.entries(cfg.headers)) reply.header(k, v);

      if (cfg.rateLimit && !this.take(cfg.rateLimit)) {
        this.counts.rateLimited++;
        reply
          .code(429)
          .header('Retry-After', '1')
          .type('text/plain; charset=utf-8')
          .send('Too Many Requests\n');
        return reply;
      }
      if (cfg.tls) {
        const denial = clientCertDenial(cfg.tls, req.raw.socket);
        if (denial) {
          this.counts.clientCertRejects++;
          this.log.debug('client certificate refused', { remote: req.ip, reason: denial });
          reply.code(403).type('text/plain; charset=utf-8').send(`Forbidden: ${denial}\n`);
          return reply;
        }
      }
      if (cfg.basicAuthUsers.size === 0) return;
      const q = req.url.indexOf('?');
      if (exempt(req.method, q < 0 ? req.url : req.url.slice(0, q))) return;

      const creds = parseBasic(req.headers.authorization);
      const verdict = creds ? await this.verifier.verify(creds.user, creds.password) : 'denied';
      if (verdict === 'ok') return;
      if (verdict === 'busy') {
        reply
          .code(503)
          .header('Retry-After', '1')
          .type('text/plain; charset=utf-8')
          .send('Service Unavailable\n');
        return reply;
      }
      this.counts.authFailures++;
      this.log.debug('basic auth failed', { remote: req.ip, user: creds?.user ?? '' });
      reply
        .code(401)
        .header('WWW-Authenticate', 'Basic realm="spool-guard"')
        .type('text/plain; charset=utf-8')
        .send('Unauthorized\n');
      return reply;
    };
  }

  private resetBucket(): void {
    this.bucket = { tokens: this.cfg?.rateLimit?.burst ?? 0, at: Date.now() };
  }

  private take(rl: { intervalMs: number; burst: number }): boolean {
    const now = Date.now();
    const b = this.bucket;
    b.tokens = Math.min(rl.burst, b.tokens + (now - b.at) / rl.intervalMs);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

function applyTls(s: TlsServer, opts: TlsServerOptions): void {
  const { requestCert, rejectUnauthorized, ...ctx } = opts;
  s.setSecureContext(ctx);
  // Read by the server for every new connection (node's _tls_wrap); not part of the secure context.
  const props = s as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
  props.requestCert = requestCert;
  props.rejectUnauthorized = rejectUnauthorized;
  // New ticket keys: sessions resumed from tickets issued under the old settings are refused.
  s.setTicketKeys(randomBytes(48));
}

/** `Authorization: Basic base64(user:password)`, or null when absent or malformed. */
export function parseBasic(header: string | undefined): { user: string; password: string } | null {
  if (!header) return null;
  const m = /^Basic[ \t]+([A-Za-z0-9+/=_-]+)[ \t]*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  return { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}
