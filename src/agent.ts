// The agent: the one place that wires the parts and owns their start/stop.
// Data flows one way: observe (spool sources) -> decide (guards) -> act (flag,
// hooks) / export (metrics, HTTP).
// Startup order matters for time-to-ready: the spools' first scans start (in
// their worker threads) before the HTTP stack is even loaded, so listing and
// module loading overlap; heavy modules are imported only when used.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { FSWatcher } from 'chokidar';
import cron, { type ScheduledTask } from 'node-cron';
import type { FastifyInstance } from 'fastify';
import { type Config, ConfigError, loadConfig, type Overrides, parseListenAddress } from './config.js';
import { SpoolGuard } from './guard/guard.js';
import { probeGreeting } from './guard/smtp-probe.js';
import type { WebSecurity } from './http/web-config.js';
import type { Logger } from './log.js';
import type { PeerView } from './metrics/metrics.js';
import { EximSpool } from './spool/exim.js';
import { TMPFS_MAGIC } from './spool/statfs.js';
import { VERSION } from './version.js';

export interface AgentOptions {
  configFile: string | null;
  overrides: Overrides;
  log: Logger;
  /** watch the config file for changes (and SIGHUP) */
  watchConfig?: boolean;
}

export class Agent {
  cfg: Config;
  readonly log: Logger;
  guards: SpoolGuard[] = [];
  private peerState = new Map<string, PeerView>();
  private peerTimers: NodeJS.Timeout[] = [];
  private memAvailable: number | null = null;
  private memTotal: number | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private cronTask: ScheduledTask | null = null;
  private app: FastifyInstance | null = null;
  private web: WebSecurity | null = null;
  private token: string | null = null;
  private configWatcher: FSWatcher | null = null;
  private reloadState = { ok: true, lastSuccess: (Date.now() / 1000) as number | null };
  private warnedMemory = new Set<string>();
  private onHup = () => {
    void this.reload('SIGHUP');
    this.web?.reload();
  };
  address: { host: string; port: number } | null = null;
  private markStarted: () => void = () => {};
  /** resolves once the agent listens: the first scans' byte and header passes wait for it */
  private readonly started = new Promise<void>((r) => {
    this.markStarted = r;
  });

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log;
    this.cfg = loadConfig(opts.configFile, opts.overrides);
  }

  async start(): Promise<void> {
    const log = this.log;
    if (process.getuid?.() === 0) {
      log.warn(
        'running as root: not needed; run as a user in the Exim group (see the README security section)',
      );
    }
    if (this.opts.watchConfig) process.on('SIGHUP', this.onHup); // before anything else: SIGHUP would kill us
    this.loadToken();
    if (this.cfg.web.configFile) {
      const { WebSecurity } = await import('./http/web-config.js');
      this.web = new WebSecurity({ path: this.cfg.web.configFile, log: log.child({ part: 'web' }) });
    }
    for (const sc of this.cfg.spools) this.addGuard(sc);
    const memory = this.pollMemory();
    const [{ createRegistry }, { createServer }] = await Promise.all([
      import('./metrics/metrics.js'),
      import('./http/server.js'),
    ]);
    const registry = createRegistry({
      version: VERSION,
      guards: () => this.guards,
      peers: () => [...this.peerState.values()],
      memoryAvailable: () => this.memAvailable,
      reload: () => this.reloadState,
    });
    this.app = await createServer({
      log: log.child({ part: 'http' }),
      registry,
      telemetryPath: this.cfg.web.telemetryPath,
      guards: () => this.guards,
      status: () => this.status(),
      peers: () => [...this.peerState.values()],
      token: () => this.token,
      web: this.web,
      version: VERSION,
    });
    if (this.opts.watchConfig && this.cfg.file) {
      const chokidar = (await import('chokidar')).default;
      this.configWatcher = chokidar.watch(this.cfg.file, {
        ignoreInitial: true,
        awaitWriteFinish: { stabilityThreshold: 100 },
      });
      this.configWatcher.on('change', () => void this.reload('file change'));
      this.configWatcher.on('add', () => void this.reload('file change'));
      const w = this.configWatcher;
      await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    }
    const la = parseListenAddress(this.cfg.web.listenAddress)!;
    await this.app.listen({ host: la.host ?? '::', port: la.port, ipv6Only: false });
    const addr = this.app.server.address();
    if (addr && typeof addr === 'object') this.address = { host: addr.address, port: addr.port };
    if (this.web) {
      this.web.attach(this.app.server as unknown as import('node:tls').Server);
      this.web.watch();
    }
    this.markStarted();
    log.info('listening', {
      address: this.cfg.web.listenAddress,
      port: this.address?.port,
      tls: !!this.web?.current()?.tls,
    });
    this.ticker = setInterval(() => this.tick(), 1000);
    this.startCron();
    this.startProbes();
    await memory;
    for (const g of this.guards) this.checkFs(g);
  }

  private addGuard(sc: Config['spools'][number]): SpoolGuard {
    const source = new EximSpool({ name: sc.name, path: sc.path, log: this.log, detailsGate: this.started });
    const g = new SpoolGuard(sc, source, this.log, () => this.memAvailable);
    g.start();
    source.onChange = () => g.evaluate(undefined, false);
    source.start();
    g.evaluate();
    this.guards.push(g);
    if (this.app) this.checkFs(g);
    return g;
  }

  private checkFs(g: SpoolGuard): void {
    const fs = g.source.observe().fs;
    if (fs && fs.typeMagic !== TMPFS_MAGIC) {
      this.log.warn('spool is not on a tmpfs (reported, not refused)', {
        spool: g.name,
        fstype: fs.fstype,
        path: g.cfg.path,
      });
    }
    if (
      fs &&
      fs.typeMagic === TMPFS_MAGIC &&
      this.memAvailable !== null &&
      fs.sizeBytes > this.memAvailable &&
      !this.warnedMemory.has(g.name)
    ) {
      this.warnedMemory.add(g.name);
      this.log.warn('the spool tmpfs could grow larger than the memory available', {
        spool: g.name,
        size_bytes: fs.sizeBytes,
        mem_available_bytes: this.memAvailable,
      });
    }
  }

  private loadToken(): void {
    const f = this.cfg.api.tokenFile;
    if (!f) {
      this.token = null;
      return;
    }
    const t = readFileSync(f, 'utf8').trim();
    if (!t) throw new ConfigError([`api.token_file: ${f} is empty`]);
    this.token = t;
  }

  private async pollMemory(): Promise<void> {
    try {
      const si = (await import('systeminformation')).default;
      const m = await si.mem();
      this.memAvailable = m.available;
      this.memTotal = m.total;
    } catch (e) {
      this.log.warn('cannot read MemAvailable', { err: String(e) });
    }
  }

  private tick(): void {
    void this.pollMemory();
    for (const g of this.guards) {
      g.source.tick();
      g.evaluate();
    }
  }

  private startCron(): void {
    this.cronTask?.stop();
    this.cronTask = cron.schedule(
      this.cfg.rescan.schedule,
      async () => {
        for (const g of this.guards) await g.source.rescan();
      },
      { noOverlap: true, name: 'rescan' },
    );
  }

  private startProbes(): void {
    for (const t of this.peerTimers) clearInterval(t);
    this.peerTimers = [];
    this.peerState.clear();
    for (const p of this.cfg.probes) {
      const view: PeerView = { name: p.name, role: p.role, up: null, ms: null };
      this.peerState.set(p.name, view);
      let running = false;
      const run = async () => {
        if (running) return;
        running = true;
        const r = await probeGreeting(p.address, {
          timeoutMs: p.timeoutSeconds * 1000,
          localAddress: p.sourceAddress ?? undefined,
          ehlo: hostname(),
        });
        running = false;
        const up = r.ok;
        if (view.up !== null && view.up !== up) {
          (up ? this.log.info : this.log.warn)(`peer ${up ? 'up' : 'down'}`, {
            peer: p.name,
            role: p.role,
            code: r.code,
            err: r.error,
          });
        }
        view.up = up;
        view.ms = r.ms;
      };
      void run();
      const t = setInterval(run, p.intervalSeconds * 1000);
      t.unref();
      this.peerTimers.push(t);
    }
  }

  /** Reloads the config; an invalid one (or one that would strand a deferring spool) is refused. */
  async reload(why: string): Promise<boolean> {
    let next: Config;
    try {
      next = loadConfig(this.opts.configFile, this.opts.overrides);
      const problems: string[] = [];
      for (const g of this.guards) {
        const n = next.spools.find((s) => s.name === g.name);
        if (g.flagPresent && !n)
          problems.push(`spools: spool ${g.name} is deferring and cannot be dropped (release it first)`);
        if (n && n.flagFile !== g.cfg.flagFile && g.flagPresent) {
          problems.push(`spools.${g.name}.flag_file: cannot move the flag of a deferring spool`);
        }
        if (n && n.path !== g.cfg.path)
          problems.push(`spools.${g.name}.path: changing a spool's path needs a restart`);
        if (n && n.flagFile !== g.cfg.flagFile)
          problems.push(`spools.${g.name}.flag_file: changing a flag file needs a restart`);
      }
      if (next.web.listenAddress !== this.cfg.web.listenAddress)
        problems.push('web.listen_address: changing it needs a restart');
      if (problems.length) throw new ConfigError(problems);
    } catch (e) {
      const problems = e instanceof ConfigError ? e.problems : [String(e)];
      for (const p of problems)
        this.log.error('config reload refused; the old config stays in force', { why, problem: p });
      this.reloadState = { ok: false, lastSuccess: this.reloadState.lastSuccess };
      return false;
    }
    const old = this.cfg;
    this.cfg = next;
    for (const g of [...this.guards]) {
      const n = next.spools.find((s) => s.name === g.name);
      if (!n) {
        g.stop();
        await g.source.stop();
        this.guards = this.guards.filter((x) => x !== g);
      } else g.cfg = n;
    }
    for (const s of next.spools) if (!this.guards.some((g) => g.name === s.name)) this.addGuard(s);
    try {
      this.loadToken();
    } catch (e) {
      this.log.error('api token unreadable after reload', { err: String(e) });
    }
    if (old.rescan.schedule !== next.rescan.schedule) this.startCron();
    if (JSON.stringify(old.probes) !== JSON.stringify(next.probes)) this.startProbes();
    this.log.level = next.log.level;
    this.reloadState = { ok: true, lastSuccess: Date.now() / 1000 };
    this.log.info('config reloaded', { why });
    for (const g of this.guards) g.evaluate();
    return true;
  }

  status() {
    return {
      version: VERSION,
      host: { memory_available_bytes: this.memAvailable, memory_total_bytes: this.memTotal },
      config: { file: this.cfg.file, last_reload_successful: this.reloadState.ok },
      spools: this.guards.map((g) => g.status()),
      peers: [...this.peerState.values()].map((p) => ({
        name: p.name,
        role: p.role,
        address: this.cfg.probes.find((x) => x.name === p.name)?.address,
        up: p.up,
        probe_seconds: p.ms === null ? null : p.ms / 1000,
      })),
    };
  }

  async stop(): Promise<void> {
    process.off('SIGHUP', this.onHup);
    if (this.ticker) clearInterval(this.ticker);
    this.cronTask?.stop();
    for (const t of this.peerTimers) clearInterval(t);
    await this.configWatcher?.close();
    await this.web?.close();
    await this.app?.close();
    for (const g of this.guards) {
      g.stop();
      await g.source.stop();
    }
  }
}
