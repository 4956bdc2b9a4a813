// Real Exim instances for tests.
//
// Each instance is one `exim4 -C <cfg>` with its own spool, logs, pid file and
// listener on 127.0.0.x:<port> (the whole 127/8 answers on Linux, so several
// instances can share a port on different addresses). Typical use:
//
//   const primary = await Exim.create({ name: 'primary', address: '127.0.0.2', port, spool: tmpfs.dir,
//                                       queueOnly: true, aclKit: { flagFile } });
//   await primary.start();
//   ... primary.bpc(), primary.bp(), primary.freeze(id), primary.remove(ids), primary.deliverAll()
//   await primary.stop(); primary.dispose();
//
// Privileges, and why it works as root: a config given with -C that is not
// listed in /etc/exim4/trusted_configs makes Exim give up root at once. Run by
// root it then opens its logs and spool files as the Exim user (Debian-exim),
// and the daemon it re-executes for deliveries reads the config as that user
// too. So the helper makes the spool, the log directory and the work
// directory owned by (or readable for) Debian-exim, and keeps the config
// world-readable. Nothing is added to /etc/exim4/trusted_configs and nothing
// outside the instance's own directories is touched. Ports above 1024 need
// no root. Mounting a tmpfs for the spool needs root (see tmpfs.ts), so the
// tests that use this guard themselves with `{ skip: !isRoot || !eximAvailable }`.
//
// No DNS anywhere: host_lookup and rfc1413 are off, routing is a manualroute
// over IP literals (`hosts_randomize = false`, so the list is tried in order,
// like MX records of increasing preference) or local delivery to a maildir.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

export const EXIM_BIN = '/usr/sbin/exim4';
export const EXIM_USER = 'Debian-exim';
/** The ACL kit shipped in the repository (deploy/exim). */
export const KIT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../deploy/exim');
export const KIT_MACROS = join(KIT_DIR, '00_spool-guard_macros');
export const KIT_ACL = join(KIT_DIR, '01_spool-guard_acl');

function lookupIds(): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync('id', ['-u', EXIM_USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', EXIM_USER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return null;
  }
}
export const eximIds = lookupIds();
/** True when exim4 and its user exist on this machine. */
export const eximAvailable = existsSync(EXIM_BIN) && eximIds !== null;

export interface EximOptions {
  /** Names the instance: primary_hostname `<name>.test`, work directory prefix. */
  name: string;
  /** 127.0.0.x to listen on (default 127.0.0.1). */
  address?: string;
  /** SMTP port; default a free one (see freePort). */
  port?: number;
  /** Spool directory (e.g. a tmpfs mount); default `<dir>/spool`. Made owned by Debian-exim. */
  spool?: string;
  /** Work directory for config, logs, pid file and maildir; default a new temp dir. */
  dir?: string;
  /** queue_only: accept and queue, never deliver on arrival (a downstream outage). */
  queueOnly?: boolean;
  /**
   * Include the ACL kit from deploy/exim verbatim (via .include) with this flag file.
   * Without it, the connect and MAIL ACLs accept everything (a relay that ignores the flag).
   */
  aclKit?: { flagFile: string };
  /**
   * Where accepted mail goes when it is delivered (-qff, or on arrival without queueOnly):
   * `{ hosts, port }` a manualroute to these IP literals, tried in this order;
   * `'maildir'` local delivery of every address to `<dir>/maildir/`;
   * default `'maildir'`.
   */
  route?: { hosts: string[]; port: number } | 'maildir';
  /** Retry rule (the whole line after `begin retry`), default `* * F,1h,10m`. */
  retry?: string;
  /** check_spool_space / check_spool_inodes (main options; '0' turns the check off). Kit values when unset. */
  checkSpoolSpace?: string;
  checkSpoolInodes?: string;
  /** message_size_limit, default 50M. */
  messageSizeLimit?: string;
  /** Extra main-section lines, appended after everything else of the main section. */
  extraMain?: string;
  /** Macro lines placed just before the kit's .include (a site's localmacros). */
  kitMacros?: string;
  /** Extra ACLs, appended to the ACL section. */
  extraAcl?: string;
}

export interface QueueEntry {
  id: string;
  size: string;
  sender: string;
  frozen: boolean;
  recipients: string[];
}

/** A port that can be bound on every given address right now. */
export async function freePort(addresses: string[] = ['127.0.0.1']): Promise<number> {
  const canBind = (address: string, port: number) =>
    new Promise<boolean>((res) => {
      const s = net.createServer();
      s.once('error', () => res(false));
      s.listen({ host: address, port, exclusive: true }, () => s.close(() => res(true)));
    });
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    let all = true;
    for (const a of addresses) {
      if (!(await canBind(a, port))) {
        all = false;
        break;
      }
    }
    if (all) return port;
  }
  throw new Error(`no free port on ${addresses.join(', ')}`);
}

export function chownToExim(path: string): void {
  if (!eximIds) return;
  chownSync(path, eximIds.uid, eximIds.gid);
}

function listenSettings(address: string, port: number): string {
  return `local_interfaces = <; ${address}\ndaemon_smtp_ports = ${port}`;
}

export class Exim {
  readonly name: string;
  readonly dir: string;
  readonly spool: string;
  readonly cfg: string;
  readonly logDir: string;
  readonly pidFile: string;
  readonly maildir: string;
  readonly address: string;
  readonly port: number;
  readonly opts: EximOptions;
  private ownDir: boolean;

  private constructor(opts: EximOptions, port: number) {
    this.opts = opts;
    this.name = opts.name;
    this.ownDir = opts.dir === undefined;
    this.dir = opts.dir ?? mkdtempSync(join(tmpdir(), `sg-exim-${opts.name}-`));
    this.spool = opts.spool ?? join(this.dir, 'spool');
    this.cfg = join(this.dir, 'exim.conf');
    this.logDir = join(this.dir, 'log');
    this.pidFile = join(this.dir, 'exim.pid');
    this.maildir = join(this.dir, 'maildir');
    this.address = opts.address ?? '127.0.0.1';
    this.port = port;
  }

  /** Prepares directories and writes the config; does not start the daemon. */
  static async create(opts: EximOptions): Promise<Exim> {
    const port = opts.port ?? (await freePort([opts.address ?? '127.0.0.1']));
    const e = new Exim(opts, port);
    mkdirSync(e.dir, { recursive: true });
    chmodSync(e.dir, 0o755); // mkdtemp makes 0700; the re-executed Exim (as Debian-exim) reads the config here
    for (const d of [e.spool, e.logDir, e.maildir]) {
      mkdirSync(d, { recursive: true });
      chownToExim(d);
    }
    // Exim makes these on first use; a real spool has them, and observers expect input/ to exist.
    for (const sub of ['input', 'msglog', 'db']) {
      const d = join(e.spool, sub);
      if (!existsSync(d)) {
        mkdirSync(d, { mode: 0o750 });
        chownToExim(d);
      }
    }
    e.writeConfig();
    return e;
  }

  /** `host:port` of the listener. */
  get listen(): string {
    return `${this.address}:${this.port}`;
  }

  /** The config text (also written to `cfg`). */
  configText(): string {
    const o = this.opts;
    const main: string[] = [
      `# test instance ${o.name}, written by test/helpers/exim.ts`,
      'keep_environment =',
      `primary_hostname = ${o.name}.test`,
      'qualify_domain = test',
      `spool_directory = ${this.spool}`,
      `log_file_path = ${this.logDir}/%slog`,
      `pid_file_path = ${this.pidFile}`,
      `exim_user = ${EXIM_USER}`,
      `exim_group = ${EXIM_USER}`,
      'never_users = root',
      'trusted_users = root',
      listenSettings(this.address, this.port),
      'host_lookup =',
      'rfc1413_hosts =',
      'tls_advertise_hosts =',
      'smtp_accept_max = 100',
      'smtp_accept_queue_per_connection = 0',
      'smtp_accept_max_per_connection = 10000',
      `message_size_limit = ${o.messageSizeLimit ?? '50M'}`,
      'received_header_text = Received: from $sender_rcvhost by $primary_hostname id $message_exim_id',
      'log_selector = +smtp_connection +received_recipients +delivery_size -host_lookup_failed',
      'acl_smtp_rcpt = acl_test_rcpt',
      'ignore_bounce_errors_after = 0s',
      'timeout_frozen_after = 0s',
      'queue_run_max = 1',
    ];
    if (o.queueOnly) main.push('queue_only = true');
    if (o.aclKit) {
      // The kit reads its flag path from this macro; everything else comes from the files verbatim.
      main.push(`SPOOL_GUARD_FLAG = ${o.aclKit.flagFile}`);
      main.push('SPOOL_GUARD_NEXT_MAIL_ACL = acl_test_mail');
      if (o.kitMacros) main.push(o.kitMacros);
      if (o.checkSpoolSpace !== undefined) main.push(`SPOOL_GUARD_CHECK_SPOOL_SPACE = ${o.checkSpoolSpace}`);
      if (o.checkSpoolInodes !== undefined)
        main.push(`SPOOL_GUARD_CHECK_SPOOL_INODES = ${o.checkSpoolInodes}`);
      main.push(`.include ${KIT_MACROS}`);
      main.push('acl_smtp_mail = MAIN_ACL_CHECK_MAIL');
    } else {
      main.push('acl_smtp_connect = acl_test_connect');
      main.push('acl_smtp_mail = acl_test_mail');
      if (o.checkSpoolSpace !== undefined) main.push(`check_spool_space = ${o.checkSpoolSpace}`);
      if (o.checkSpoolInodes !== undefined) main.push(`check_spool_inodes = ${o.checkSpoolInodes}`);
    }
    if (o.extraMain) main.push(o.extraMain);

    const acl = [
      'begin acl',
      ...(o.aclKit ? [`.include ${KIT_ACL}`] : []),
      'acl_test_connect:',
      '  accept',
      'acl_test_mail:',
      '  accept',
      'acl_test_rcpt:',
      '  accept',
      ...(o.extraAcl ? [o.extraAcl] : []),
    ];

    const route = o.route ?? 'maildir';
    const routers =
      route === 'maildir'
        ? ['begin routers', 'to_maildir:', '  driver = accept', '  transport = maildir_t']
        : [
            'begin routers',
            'to_hosts:',
            '  driver = manualroute',
            // IPv4 literals, colon-separated, tried in this order; byname: no DNS.
            `  route_list = * "${route.hosts.join(' : ')}" byname`,
            '  hosts_randomize = false',
            '  self = send',
            '  transport = smtp_t',
          ];
    const transports = [
      'begin transports',
      'maildir_t:',
      '  driver = appendfile',
      `  directory = ${this.maildir}`,
      '  maildir_format',
      '  delivery_date_add',
      '  envelope_to_add',
      '  return_path_add',
      `  user = ${EXIM_USER}`,
      `  group = ${EXIM_USER}`,
      'smtp_t:',
      '  driver = smtp',
      `  port = ${route === 'maildir' ? 25 : route.port}`,
      '  allow_localhost',
      '  hosts_try_fastopen =',
      '  hosts_try_chunking =',
      '  connect_timeout = 5s',
      '  command_timeout = 30s',
    ];
    const retry = ['begin retry', o.retry ?? '* * F,1h,10m'];
    return [...main, '', ...acl, '', ...routers, '', ...transports, '', ...retry, ''].join('\n');
  }

  writeConfig(): void {
    writeFileSync(this.cfg, this.configText(), { mode: 0o644 });
    chmodSync(this.cfg, 0o644);
  }

  /** Runs exim4 -C cfg with arguments; returns stdout; throws with stderr on a non-zero exit. */
  exim(args: string[], input?: string | Buffer): string {
    const r = spawnSync(EXIM_BIN, ['-C', this.cfg, ...args], {
      input,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      timeout: 120_000,
    });
    if (r.error) throw r.error;
    if (r.status !== 0) {
      throw new Error(
        `exim4 ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()} ${r.stdout.trim()}`.trim(),
      );
    }
    return r.stdout;
  }

  /** Parses the config (`-bV`), throws with Exim's complaint. */
  check(): void {
    this.exim(['-bV']);
  }

  daemonPid(): number | null {
    try {
      const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) return null;
      process.kill(pid, 0);
      return pid;
    } catch {
      return null;
    }
  }

  /** Starts the daemon (`-bd -oX port -oP pidfile`, no queue runner) and waits until it listens. */
  async start(timeoutMs = 10_000): Promise<void> {
    if (this.daemonPid()) throw new Error(`${this.name}: already running`);
    rmSync(this.pidFile, { force: true });
    const logBefore = this.mainlog().length;
    // -oX alone writes no pid file; -oP names it. -bd forks: this returns when the daemon is detached.
    this.exim(['-bd', '-oX', String(this.port), '-oP', this.pidFile]);
    await waitFor(
      `${this.name} listening on ${this.listen}`,
      () =>
        this.mainlog().slice(logBefore).includes('daemon started') &&
        this.daemonPid() !== null &&
        this.connectable(),
      { timeoutMs },
    ).catch((e) => {
      throw new Error(
        `${(e as Error).message}\npaniclog: ${this.paniclog()}\nmainlog tail: ${this.mainlog().slice(-800)}`,
      );
    });
  }

  private connectable(): Promise<boolean> {
    // A bare connect: the daemon accepted it as soon as it resolves (closing at once costs one log line).
    return new Promise((res) => {
      const s = net.connect({ host: this.address, port: this.port });
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
  }

  /** Stops the daemon (SIGTERM, then SIGKILL) and waits until it is gone. Delivery children may linger briefly. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const pid = this.daemonPid();
    if (!pid) return;
    process.kill(pid, 'SIGTERM');
    await waitFor(`${this.name} daemon ${pid} to exit`, () => !alive(pid), { timeoutMs }).catch(() => {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
    rmSync(this.pidFile, { force: true });
  }

  /** Messages in the queue, as `exim4 -bpc` counts them. */
  bpc(): number {
    return Number(this.exim(['-bpc']).trim());
  }

  /** Raw `exim4 -bp` output. */
  bpRaw(): string {
    return this.exim(['-bp']);
  }

  /** The queue as `exim4 -bp` lists it, parsed. */
  bp(): QueueEntry[] {
    const out: QueueEntry[] = [];
    let cur: QueueEntry | undefined;
    for (const line of this.bpRaw().split('\n')) {
      // " 0m   403 1xZ5yC-0001WW-11 <c@d.test> *** frozen ***"
      const m =
        /^\s*\d+[smhdw]\s+(\S+)\s+([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4})\s+(<[^>]*>)(.*)$/.exec(
          line,
        );
      if (m) {
        cur = { size: m[1], id: m[2], sender: m[3], frozen: m[4].includes('*** frozen ***'), recipients: [] };
        out.push(cur);
      } else if (cur && /^\s+\S/.test(line)) {
        cur.recipients.push(line.trim());
      }
    }
    return out;
  }

  ids(): string[] {
    return this.bp().map((e) => e.id);
  }

  frozenIds(): string[] {
    return this.bp()
      .filter((e) => e.frozen)
      .map((e) => e.id);
  }

  /** Freezes messages (`-Mf`). */
  freeze(ids: string[]): void {
    if (ids.length) this.exim(['-Mf', ...ids]);
  }

  /** Thaws messages (`-Mt`). */
  thaw(ids: string[]): void {
    if (ids.length) this.exim(['-Mt', ...ids]);
  }

  /** Removes messages (`-Mrm`), in batches; all of the queue when no ids are given. */
  remove(ids: string[] = this.ids()): void {
    for (let i = 0; i < ids.length; i += 500) this.exim(['-Mrm', ...ids.slice(i, i + 500)]);
  }

  /** One forced queue run in the foreground (`-qff`: frozen too, retry times ignored). */
  deliverAll(): void {
    this.exim(['-qff']);
  }

  /** Removes the retry hints database (`<spool>/db/retry*`), so hosts that deferred are tried again at once. */
  clearRetry(): void {
    const db = join(this.spool, 'db');
    if (!existsSync(db)) return;
    for (const f of readdirSync(db)) if (f.startsWith('retry')) rmSync(join(db, f), { force: true });
  }

  /**
   * Submits a message on the command line (`-odq`: queue only; `-odi`: deliver in the foreground and
   * return after the attempt). Returns the message id Exim logged for it.
   */
  submit(opts: {
    from?: string;
    to: string | string[];
    body?: string;
    size?: number;
    mode?: 'odq' | 'odi';
    subject?: string;
  }): string {
    const to = Array.isArray(opts.to) ? opts.to : [opts.to];
    const msg = makeMessage({ from: opts.from, to, size: opts.size, body: opts.body, subject: opts.subject });
    const before = this.mainlog().length;
    this.exim([`-${opts.mode ?? 'odq'}`, '-f', opts.from ?? 'sender@test', '--', ...to], msg);
    const m = /^\S+ \S+ ([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) <= /m.exec(
      this.mainlog().slice(before),
    );
    if (!m) throw new Error(`${this.name}: no <= line logged for the submission`);
    return m[1];
  }

  mainlog(): string {
    return readOr(join(this.logDir, 'mainlog'));
  }

  paniclog(): string {
    return readOr(join(this.logDir, 'paniclog'));
  }

  rejectlog(): string {
    return readOr(join(this.logDir, 'rejectlog'));
  }

  /** Files delivered to the maildir (new/ and cur/). */
  maildirCount(): number {
    let n = 0;
    for (const sub of ['new', 'cur']) {
      const d = join(this.maildir, sub);
      if (existsSync(d)) n += readdirSync(d).length;
    }
    return n;
  }

  /** Stops the daemon and removes the work directory (not an external spool: its owner disposes of it). */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill 0; /proc says whether it is one.
  try {
    return !/^\S+ \([^)]*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function readOr(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** An RFC 5322 message of about `size` bytes (body lines of 76 characters), or with the given body. */
export function makeMessage(opts: {
  from?: string;
  to: string[];
  size?: number;
  body?: string;
  subject?: string;
}): string {
  const head =
    `From: ${opts.from ?? 'sender@test'}\r\n` +
    `To: ${opts.to.join(', ')}\r\n` +
    `Subject: ${opts.subject ?? 'spool-guard test'}\r\n` +
    `Message-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@test>\r\n` +
    '\r\n';
  if (opts.body !== undefined) return head + opts.body.replace(/\r?\n/g, '\r\n');
  const size = opts.size ?? 1000;
  const line = `${'x'.repeat(74)}\r\n`;
  const n = Math.max(1, Math.ceil((size - head.length) / line.length));
  return head + line.repeat(n);
}

export interface SmtpReply {
  code: number;
  lines: string[];
  /** Text of all lines without the codes, joined with a space. */
  text: string;
}

/**
 * A minimal SMTP client for tests: reads whole (multi-line) replies, one command at a time.
 * `SmtpClient.connect()` resolves with the greeting already read.
 */
export class SmtpClient {
  greeting!: SmtpReply;
  closed = false;
  private buf = '';
  private waiters: Array<(r: SmtpReply | Error) => void> = [];
  private replies: SmtpReply[] = [];
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.drain();
    });
    const fail = (e: Error) => {
      this.closed = true;
      this.failure = e;
      for (const w of this.waiters.splice(0)) w(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static async connect(
    address: string,
    opts: { localAddress?: string; timeoutMs?: number } = {},
  ): Promise<SmtpClient> {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(i + 1));
    const socket = net.connect({ host, port, localAddress: opts.localAddress });
    socket.setTimeout(opts.timeoutMs ?? 30_000, () => socket.destroy(new Error('SMTP timeout')));
    const c = new SmtpClient(socket);
    c.greeting = await c.read();
    return c;
  }

  private drain(): void {
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      let done = false;
      for (;;) {
        const nl = this.buf.indexOf('\n', pos);
        if (nl < 0) break;
        const line = this.buf.slice(pos, nl).replace(/\r$/, '');
        pos = nl + 1;
        lines.push(line);
        if (line[3] !== '-') {
          done = true;
          break;
        }
      }
      if (!done) return;
      this.buf = this.buf.slice(pos);
      const reply: SmtpReply = {
        code: Number(lines[lines.length - 1].slice(0, 3)),
        lines,
        text: lines.map((l) => l.slice(4)).join(' '),
      };
      const w = this.waiters.shift();
      if (w) w(reply);
      else this.replies.push(reply);
    }
  }

  /** The next reply. */
  read(): Promise<SmtpReply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((res, rej) => this.waiters.push((x) => (x instanceof Error ? rej(x) : res(x))));
  }

  async command(line: string): Promise<SmtpReply> {
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  /** DATA with dot-stuffing; resolves with the reply after the final dot (or to DATA itself when not 354). */
  async data(message: string): Promise<SmtpReply> {
    const r = await this.command('DATA');
    if (r.code !== 354) return r;
    const body = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
    this.socket.write(body.endsWith('\r\n') ? `${body}.\r\n` : `${body}\r\n.\r\n`);
    return this.read();
  }

  /** QUIT (when still open) and close. */
  async quit(): Promise<void> {
    if (!this.closed) {
      await this.command('QUIT').catch(() => undefined);
    }
    this.socket.destroy();
  }
}

export interface SendResult {
  /** True when the message was accepted (250 after the final dot). */
  accepted: boolean;
  /** The reply that decided it (greeting, MAIL, RCPT or end of data). */
  reply: SmtpReply;
  stage: 'greeting' | 'ehlo' | 'mail' | 'rcpt' | 'data';
}

/** One message over SMTP, one session. Never throws on SMTP refusals; throws on connection errors. */
export async function smtpSend(
  address: string,
  opts: {
    from?: string;
    to: string | string[];
    size?: number;
    body?: string;
    localAddress?: string;
    helo?: string;
  },
): Promise<SendResult> {
  const to = Array.isArray(opts.to) ? opts.to : [opts.to];
  const c = await SmtpClient.connect(address, { localAddress: opts.localAddress });
  try {
    if (c.greeting.code !== 220) return { accepted: false, reply: c.greeting, stage: 'greeting' };
    let r = await c.command(`EHLO ${opts.helo ?? 'client.test'}`);
    if (r.code !== 250) return { accepted: false, reply: r, stage: 'ehlo' };
    r = await c.command(`MAIL FROM:<${opts.from ?? 'sender@test'}>`);
    if (r.code !== 250) return { accepted: false, reply: r, stage: 'mail' };
    for (const t of to) {
      r = await c.command(`RCPT TO:<${t}>`);
      if (r.code !== 250) return { accepted: false, reply: r, stage: 'rcpt' };
    }
    r = await c.data(makeMessage({ from: opts.from, to, size: opts.size, body: opts.body }));
    return { accepted: r.code === 250, reply: r, stage: 'data' };
  } finally {
    await c.quit();
  }
}
