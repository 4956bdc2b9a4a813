// One spool's guard: observe -> decide -> act. Runs the policy after every batch
// of spool changes (event-driven) and on a 1 s tick (time-based release, TTL
// expiry), drives the flag file and the hooks, and checks that the relay really
// answers 4xx while deferring (closed loop).
import type { DeferReason, SpoolConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { Observation, SpoolSource } from '../spool/source.js';
import { usedBytes, usedBytesRatio, usedInodes, usedInodesRatio } from '../spool/statfs.js';
import { acquireLock, FlagError, FlagFile } from './flag.js';
import { runHook } from './hooks.js';
import {
  type DeferState,
  decide,
  enterReasons,
  INITIAL_STATE,
  type Inputs,
  type Override,
} from './policy.js';
import { probeGreeting } from './smtp-probe.js';
import { Trend, timeToFull } from './trend.js';

export const MAX_OFF_SECONDS = 24 * 3600;

export interface GuardCounters {
  transitions: number;
  deferSeconds: number;
  flagWriteErrors: number;
  hookFailures: { on_defer: number; on_release: number };
  relayChecks: number;
}

export interface RelayCheck {
  enforcing: boolean;
  code: number | null;
  error: string | null;
  at: number;
}

const nowSec = () => Date.now() / 1000;

export class SpoolGuard {
  readonly name: string;
  readonly flag: FlagFile;
  state: DeferState = { ...INITIAL_STATE };
  override: Override | null = null;
  /** flag presence as last seen on disk */
  flagPresent = false;
  lastObservation: Observation | null = null;
  lastInputs: Inputs | null = null;
  fillRate: { bytes: number; inodes: number } | null = null;
  ttf = Number.POSITIVE_INFINITY;
  relay: RelayCheck | null = null;
  readonly counters: GuardCounters = {
    transitions: 0,
    deferSeconds: 0,
    flagWriteErrors: 0,
    hookFailures: { on_defer: 0, on_release: 0 },
    relayChecks: 0,
  };
  private trend = new Trend(60);
  private slopesAt = 0;
  private lastEval: number | null = null;
  private unlock: (() => void) | null = null;
  private lastOffWarning = 0;
  private relayTimer: NodeJS.Timeout | null = null;
  private relayInFlight = false;
  private wroteUntil: number | null = null;
  private warnedUnlimited = false;
  private log: Logger;

  constructor(
    public cfg: SpoolConfig,
    readonly source: SpoolSource,
    log: Logger,
    private readonly memory: () => number | null,
  ) {
    this.name = cfg.name;
    this.flag = new FlagFile(cfg.flagFile);
    this.log = log.child({ spool: cfg.name });
  }

  /** Takes the lock and the state left on disk (flag and override): a restart never re-opens the relay. */
  start(): void {
    this.unlock = acquireLock(this.flag.lockPath);
    const f = this.flag.read();
    this.override = this.flag.readOverride();
    if (f) {
      const since = f.since ?? Math.floor(nowSec());
      const thresholdReasons = f.reasons.filter((r) => r !== 'manual');
      this.state = {
        active: true,
        reasons: f.reasons,
        since,
        thresholdSince: thresholdReasons.length || !f.reasons.includes('manual') ? since : null,
      };
      this.flagPresent = true;
      this.wroteUntil = f.until;
      this.log.info('defer mode found active at start; keeping it until the policy releases it', {
        reasons: f.reasons.join(',') || 'unknown',
        since,
      });
    }
    if (this.override)
      this.log.info('manual override restored', {
        mode: this.override.mode,
        until: this.override.until ?? 'auto',
      });
    if (this.cfg.relayAddress) {
      this.relayTimer = setInterval(() => void this.checkRelay(), this.cfg.relayCheckIntervalSeconds * 1000);
      this.relayTimer.unref();
      void this.checkRelay();
    }
  }

  stop(): void {
    if (this.relayTimer) clearInterval(this.relayTimer);
    this.relayTimer = null;
    this.unlock?.();
    this.unlock = null;
  }

  private inputs(o: Observation): Inputs {
    const fs = o.fs;
    const bytesRatio = fs ? usedBytesRatio(fs) : null;
    const inodesRatio = fs ? usedInodesRatio(fs) : null;
    if (fs && bytesRatio === null && inodesRatio === null && !this.warnedUnlimited) {
      this.warnedUnlimited = true;
      this.log.warn(
        'spool filesystem is unlimited (size and inodes 0): no ratios; only memory_available_bytes protects it',
      );
    }
    return {
      observable: o.up,
      usedBytesRatio: bytesRatio,
      usedInodesRatio: inodesRatio,
      queueMessages: o.queue ? o.queue.messages : null,
      timeToFullSeconds: this.ttf,
      memoryAvailableBytes: this.memory(),
    };
  }

  /** Observe, decide, act. Cheap: called after every batch of spool changes and every second. */
  evaluate(now = nowSec(), checkDisk = true): void {
    const o = this.source.observe();
    this.lastObservation = o;
    if (this.lastEval !== null && this.flagPresent)
      this.counters.deferSeconds += Math.max(0, now - this.lastEval);
    this.lastEval = now;
    if (o.up && o.fs) {
      this.trend.add({ t: now, bytes: usedBytes(o.fs), inodes: usedInodes(o.fs) });
      // the trend holds one sample per 100 ms: recompute the slopes at most that often
      if (now - this.slopesAt >= 0.1 || this.fillRate === null) {
        this.fillRate = this.trend.slopes();
        this.slopesAt = now;
      }
      this.ttf = timeToFull(this.fillRate, o.fs.availBytes, o.fs.filesFree, {
        bytes: o.fs.sizeBytes > 0,
        inodes: o.fs.files > 0,
      });
    } else {
      this.trend.clear();
      this.fillRate = null;
      this.ttf = Number.POSITIVE_INFINITY;
    }
    const inputs = this.inputs(o);
    this.lastInputs = inputs;
    const d = decide(inputs, this.cfg, this.state, this.override, now);
    if (d.overrideExpired) {
      this.log.info('manual override expired', { mode: this.override?.mode });
      this.override = null;
      this.persistOverride();
    }
    const prev = this.state;
    this.state = d.state;
    if (this.override?.mode === 'off' && now - this.lastOffWarning >= 60) {
      this.lastOffWarning = now;
      this.log.warn('manual override OFF in force: defer mode is suppressed whatever the spool does', {
        until: this.override.until,
        holding: enterReasons(inputs, this.cfg).join(',') || 'none',
      });
    }
    this.actuate(prev, now, checkDisk);
  }

  private actuate(prev: DeferState, now: number, checkDisk: boolean): void {
    const s = this.state;
    const until = this.override?.mode === 'on' ? this.override.until : null;
    // the disk may have changed behind our back (flag removed, directory wiped): looked at on
    // every tick and every decision that changes something; the batches in between trust it
    let onDisk = this.flagPresent;
    const reasonsChanged = prev.reasons.join(',') !== s.reasons.join(',');
    const changing = s.active !== prev.active || reasonsChanged;
    if (checkDisk || changing) {
      try {
        onDisk = this.flag.exists();
      } catch {
        onDisk = this.flagPresent;
      }
    }
    const needWrite =
      s.active && (!onDisk || reasonsChanged || until !== this.wroteUntil || !this.flagPresent);
    const needRemove = !s.active && onDisk;
    if (s.active && !prev.active) {
      this.counters.transitions++;
      this.log.warn('defer mode entered', { reasons: s.reasons.join(','), flag: this.flag.path });
    } else if (!s.active && prev.active) {
      this.log.info('defer mode released', {
        held_seconds: prev.since ? Math.round(now - prev.since) : undefined,
        flag: this.flag.path,
      });
    }
    if (s.active && onDisk && !this.flagPresent && prev.active) this.flagPresent = true;
    if (s.active && !onDisk && prev.active && this.flagPresent)
      this.log.warn('flag file disappeared; writing it again');
    try {
      if (needWrite) {
        this.flag.write({ reasons: s.reasons, since: s.since, until });
        this.wroteUntil = until;
        this.flagPresent = true;
      } else if (needRemove) {
        this.flag.remove();
        this.flagPresent = false;
      } else this.flagPresent = onDisk;
    } catch (e) {
      this.counters.flagWriteErrors++;
      this.flagPresent = onDisk;
      this.log.error('flag file could not be changed; will retry', {
        flag: this.flag.path,
        err: e instanceof FlagError ? e.message : String(e),
      });
    }
    if (s.active !== prev.active) {
      this.fireHook(s.active ? 'on_defer' : 'on_release', s.active ? s.reasons : prev.reasons);
      if (this.cfg.relayAddress) void this.checkRelay();
    }
  }

  private fireHook(which: 'on_defer' | 'on_release', reasons: DeferReason[]): void {
    const argv = which === 'on_defer' ? this.cfg.hooks.onDefer : this.cfg.hooks.onRelease;
    if (!argv) return;
    const env = {
      SPOOL_GUARD_EVENT: which === 'on_defer' ? 'defer' : 'release',
      SPOOL_GUARD_SPOOL: this.name,
      SPOOL_GUARD_REASONS: reasons.join(','),
      SPOOL_GUARD_FLAG_FILE: this.flag.path,
    };
    void runHook(argv, env, this.cfg.hooks.timeoutSeconds, this.log).then((r) => {
      if (!r.ok) this.counters.hookFailures[which]++;
    });
  }

  async checkRelay(): Promise<void> {
    const addr = this.cfg.relayAddress;
    if (!addr || this.relayInFlight) return;
    this.relayInFlight = true;
    try {
      const expectDefer = this.flagPresent;
      const r = await probeGreeting(addr, {
        timeoutMs: 5000,
        localAddress: this.cfg.relaySourceAddress ?? undefined,
      });
      this.counters.relayChecks++;
      const code = r.code ?? null;
      // the state may have changed while the probe ran: judge against the state it started with
      const enforcing =
        code !== null && (expectDefer ? code >= 400 && code < 500 : code >= 200 && code < 300);
      const was = this.relay?.enforcing;
      this.relay = { enforcing, code, error: r.error ?? null, at: nowSec() };
      if (!enforcing && this.flagPresent === expectDefer) {
        this.log.error('relay does not enforce the defer state', {
          relay: addr,
          deferring: expectDefer,
          greeting: code ?? 'none',
          err: r.error,
        });
      } else if (enforcing && was === false)
        this.log.info('relay enforces the defer state again', { relay: addr });
    } finally {
      this.relayInFlight = false;
    }
  }

  /** Manual override from the API. ttl in seconds (null: until auto; not allowed for off). */
  setOverride(mode: 'on' | 'off' | 'auto', ttl: number | null, now = nowSec()): void {
    if (mode === 'auto') {
      this.override = null;
      this.log.info('manual override cleared (auto)');
    } else {
      const until = ttl === null ? null : Math.floor(now + ttl);
      this.override = { mode, until, setAt: Math.floor(now) };
      if (mode === 'off') {
        this.lastOffWarning = now;
        this.log.warn('manual override OFF set: defer mode suppressed', { until });
      } else this.log.warn('manual override ON set: relay deferring', { until: until ?? 'auto' });
    }
    this.persistOverride();
    this.evaluate(now);
  }

  private persistOverride(): void {
    try {
      this.flag.writeOverride(this.override);
    } catch (e) {
      this.counters.flagWriteErrors++;
      this.log.error('override state could not be saved', { err: String(e) });
    }
  }

  status() {
    const o = this.lastObservation ?? this.source.observe();
    const c = this.cfg;
    return {
      name: this.name,
      path: c.path,
      mta: c.mta,
      up: o.up,
      error: o.error,
      ready: o.listed,
      complete: o.complete,
      filesystem: o.fs
        ? {
            fstype: o.fs.fstype,
            size_bytes: o.fs.sizeBytes,
            avail_bytes: o.fs.availBytes,
            files: o.fs.files,
            files_free: o.fs.filesFree,
            used_bytes_ratio: usedBytesRatio(o.fs),
            used_inodes_ratio: usedInodesRatio(o.fs),
          }
        : null,
      queue: o.queue
        ? {
            messages: o.queue.messages,
            bytes: o.complete ? o.queue.bytes : null,
            frozen: o.complete ? o.queue.frozen : null,
            oldest_timestamp: o.queue.oldest,
            unreadable_headers: o.queue.badHeaders,
          }
        : null,
      stray_files: o.strays,
      fill_rate: this.fillRate
        ? { bytes_per_second: this.fillRate.bytes, inodes_per_second: this.fillRate.inodes }
        : null,
      time_to_full_seconds: Number.isFinite(this.ttf) ? this.ttf : null,
      defer: {
        active: this.flagPresent,
        reasons: this.state.reasons,
        since: this.state.since,
        flag_file: c.flagFile,
      },
      override: this.override ? { mode: this.override.mode, until: this.override.until } : null,
      thresholds: {
        defer: {
          used_bytes_ratio: c.defer.usedBytesRatio,
          used_inodes_ratio: c.defer.usedInodesRatio,
          queue_messages: c.defer.queueMessages,
          time_to_full_seconds: c.defer.timeToFullSeconds,
          memory_available_bytes: c.defer.memoryAvailableBytes,
        },
        release: {
          used_bytes_ratio: c.release.usedBytesRatio,
          used_inodes_ratio: c.release.usedInodesRatio,
          queue_messages: c.release.queueMessages,
        },
        min_defer_seconds: c.minDeferSeconds,
      },
      relay: c.relayAddress
        ? {
            address: c.relayAddress,
            enforcing: this.relay?.enforcing ?? null,
            greeting_code: this.relay?.code ?? null,
            checked_at: this.relay?.at ?? null,
          }
        : null,
    };
  }
}
