// Prometheus exposition: read-only views of the agent's state, computed at scrape time
// (every figure is O(1): the queue totals are kept incrementally).
import { Counter, Gauge, Registry } from 'prom-client';
import { DEFER_REASONS } from '../config.js';
import type { SpoolGuard } from '../guard/guard.js';
import { STRAY_KINDS } from '../spool/queue-state.js';
import { collectDefaultMetrics } from './default-metrics.js';

export interface PeerView {
  name: string;
  role: string;
  up: boolean | null;
  ms: number | null;
}

export interface MetricsSource {
  version: string;
  guards(): SpoolGuard[];
  peers(): PeerView[];
  memoryAvailable(): number | null;
  reload(): { ok: boolean; lastSuccess: number | null };
}

export function createRegistry(src: MetricsSource): Registry {
  const reg = new Registry();
  // process_* and nodejs_* series, as every exporter has (RSS, CPU, heap, event loop lag)
  collectDefaultMetrics(reg);
  const P = 'spoolguard_';
  const S = ['spool'];
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void) =>
    new Gauge({
      name: P + name,
      help,
      labelNames,
      registers: [reg],
      collect() {
        this.reset();
        fill(this);
      },
    });
  const counter = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (set: (l: Record<string, string>, v: number) => void) => void,
  ) =>
    new Counter({
      name: P + name,
      help,
      labelNames,
      registers: [reg],
      collect() {
        this.reset();
        fill((l, v) => this.inc(l, v));
      },
    });
  const each = (fn: (g: SpoolGuard, spool: string) => void) => {
    for (const g of src.guards()) fn(g, g.name);
  };
  const obs = (g: SpoolGuard) => g.lastObservation ?? g.source.observe();

  gauge('build_info', 'A metric with a constant 1 labelled with the spool-guard version.', ['version'], (m) =>
    m.set({ version: src.version }, 1),
  );
  gauge('spool_up', '1 when the last observation of this spool succeeded.', S, (m) =>
    each((g, spool) => m.set({ spool }, obs(g).up ? 1 : 0)),
  );
  gauge(
    'spool_ready',
    '1 once the first listing is done and the bytes and frozen figures are complete.',
    S,
    (m) => each((g, spool) => m.set({ spool }, obs(g).complete ? 1 : 0)),
  );
  gauge(
    'spool_info',
    'Always 1; the spool path, MTA and filesystem type as the kernel reports it.',
    ['spool', 'path', 'mta', 'fstype'],
    (m) =>
      each((g, spool) =>
        m.set({ spool, path: g.cfg.path, mta: g.cfg.mta, fstype: obs(g).fs?.fstype ?? 'unknown' }, 1),
      ),
  );
  const fsGauge = (
    name: string,
    help: string,
    pick: (f: NonNullable<ReturnType<typeof obs>['fs']>) => number,
  ) =>
    gauge(name, help, S, (m) =>
      each((g, spool) => {
        const f = obs(g).fs;
        if (f) m.set({ spool }, pick(f));
      }),
    );
  fsGauge(
    'filesystem_size_bytes',
    'Size of the spool filesystem (statfs blocks * bsize).',
    (f) => f.sizeBytes,
  );
  fsGauge(
    'filesystem_avail_bytes',
    'Bytes available to unprivileged users (statfs bavail * bsize).',
    (f) => f.availBytes,
  );
  fsGauge('filesystem_files', 'Total inodes of the spool filesystem.', (f) => f.files);
  fsGauge('filesystem_files_free', 'Free inodes of the spool filesystem.', (f) => f.filesFree);
  const qGauge = (
    name: string,
    help: string,
    pick: (q: NonNullable<ReturnType<typeof obs>['queue']>) => number | null,
    needComplete = false,
  ) =>
    gauge(name, help, S, (m) =>
      each((g, spool) => {
        const o = obs(g);
        if (!o.queue || (needComplete && !o.complete)) return;
        const v = pick(o.queue);
        if (v !== null) m.set({ spool }, v);
      }),
    );
  qGauge('queue_messages', 'Messages in the queue (-H files, as exim -bpc counts them).', (q) => q.messages);
  qGauge(
    'queue_bytes',
    "Sum of the sizes of the queued messages' -D, -H and -J files.",
    (q) => q.bytes,
    true,
  );
  qGauge('queue_frozen_messages', 'Frozen messages in the queue.', (q) => q.frozen, true);
  qGauge(
    'queue_unreadable_headers',
    'Queued messages whose -H file could not be parsed.',
    (q) => q.badHeaders,
    true,
  );
  qGauge(
    'queue_oldest_message_timestamp_seconds',
    'Arrival time of the oldest queued message, from its id.',
    (q) => q.oldest,
  );
  gauge(
    'spool_stray_files',
    'Files in input/ that are not part of a queued message (never touched).',
    ['spool', 'kind'],
    (m) =>
      each((g, spool) => {
        const o = obs(g);
        if (!o.queue) return;
        for (const kind of STRAY_KINDS) m.set({ spool, kind }, o.strays[kind]);
      }),
  );
  gauge(
    'fill_rate_bytes_per_second',
    'Least-squares slope of used bytes over the last 60 s (negative when draining).',
    S,
    (m) =>
      each((g, spool) => {
        if (g.fillRate && obs(g).up) m.set({ spool }, g.fillRate.bytes);
      }),
  );
  gauge('fill_rate_inodes_per_second', 'Least-squares slope of used inodes over the last 60 s.', S, (m) =>
    each((g, spool) => {
      if (g.fillRate && obs(g).up) m.set({ spool }, g.fillRate.inodes);
    }),
  );
  gauge(
    'time_to_full_seconds',
    'Predicted seconds until the spool is full (bytes or inodes, the sooner); +Inf when not filling.',
    S,
    (m) =>
      each((g, spool) => {
        if (obs(g).up) m.set({ spool }, g.ttf);
      }),
  );
  gauge(
    'host_memory_available_bytes',
    'MemAvailable of the host (tmpfs pages live in RAM and swap).',
    [],
    (m) => {
      const v = src.memoryAvailable();
      if (v !== null) m.set(v);
    },
  );
  gauge('defer_active', '1 while the flag file exists (the relay answers 4xx).', S, (m) =>
    each((g, spool) => m.set({ spool }, g.flagPresent ? 1 : 0)),
  );
  gauge('defer_reason', '1 while that reason holds defer mode on, else 0.', ['spool', 'reason'], (m) =>
    each((g, spool) => {
      for (const reason of DEFER_REASONS)
        m.set({ spool, reason }, g.state.active && g.state.reasons.includes(reason) ? 1 : 0);
    }),
  );
  gauge('override', '1 for the active manual mode (on, off), 0 otherwise.', ['spool', 'mode'], (m) =>
    each((g, spool) => {
      for (const mode of ['on', 'off'] as const) m.set({ spool, mode }, g.override?.mode === mode ? 1 : 0);
    }),
  );
  gauge('override_expiry_timestamp_seconds', 'When the active manual override ends.', S, (m) =>
    each((g, spool) => {
      if (g.override?.until) m.set({ spool }, g.override.until);
    }),
  );
  counter('defer_transitions_total', 'Times defer mode was entered.', S, (set) =>
    each((g, spool) => set({ spool }, g.counters.transitions)),
  );
  counter('defer_seconds_total', 'Time spent in defer mode.', S, (set) =>
    each((g, spool) => set({ spool }, g.counters.deferSeconds)),
  );
  gauge(
    'defer_threshold_ratio',
    'Configured used ratios that enter and release defer mode.',
    ['spool', 'resource', 'edge'],
    (m) =>
      each((g, spool) => {
        const c = g.cfg;
        const put = (resource: string, edge: string, v: number | null) => {
          if (v !== null) m.set({ spool, resource, edge }, v);
        };
        put('bytes', 'enter', c.defer.usedBytesRatio);
        put('bytes', 'release', c.release.usedBytesRatio);
        put('inodes', 'enter', c.defer.usedInodesRatio);
        put('inodes', 'release', c.release.usedInodesRatio);
      }),
  );
  gauge('defer_threshold_messages', 'Configured queue thresholds.', ['spool', 'edge'], (m) =>
    each((g, spool) => {
      if (g.cfg.defer.queueMessages !== null) m.set({ spool, edge: 'enter' }, g.cfg.defer.queueMessages);
      if (g.cfg.release.queueMessages !== null)
        m.set({ spool, edge: 'release' }, g.cfg.release.queueMessages);
    }),
  );
  counter('flag_write_errors_total', 'Failed flag file writes or removals.', S, (set) =>
    each((g, spool) => set({ spool }, g.counters.flagWriteErrors)),
  );
  counter('hook_failures_total', 'Hooks that failed or timed out.', ['spool', 'hook'], (set) =>
    each((g, spool) => {
      set({ spool, hook: 'on_defer' }, g.counters.hookFailures.on_defer);
      set({ spool, hook: 'on_release' }, g.counters.hookFailures.on_release);
    }),
  );
  gauge(
    'rescan_drift_messages',
    'Messages the last full rescan found wrong in the incrementally kept state (lost events).',
    S,
    (m) => each((g, spool) => m.set({ spool }, g.source.stats.lastDrift)),
  );
  counter('rescans_total', 'Full reconciliation rescans done.', S, (set) =>
    each((g, spool) => set({ spool }, g.source.stats.rescans)),
  );
  counter('rescan_corrections_total', 'Entries the rescans corrected.', S, (set) =>
    each((g, spool) => set({ spool }, g.source.stats.corrections)),
  );
  gauge('rescan_duration_seconds', 'Duration of the last full rescan.', S, (m) =>
    each((g, spool) => m.set({ spool }, g.source.stats.lastRescanSeconds)),
  );
  gauge('scan_list_duration_seconds', 'Duration of the last directory listing of the spool.', S, (m) =>
    each((g, spool) => m.set({ spool }, g.source.stats.lastListMs / 1000)),
  );
  counter(
    'scan_errors_total',
    'Errors observing the spool (unreadable entries, vanished or unmounted spool).',
    S,
    (set) => each((g, spool) => set({ spool }, g.source.stats.scanErrors)),
  );
  counter('watch_events_total', 'Directory change events received.', S, (set) =>
    each((g, spool) => set({ spool }, g.source.stats.events)),
  );
  gauge(
    'relay_enforcing',
    "1 when the relay's greeting matches the defer state (4xx while deferring, 2xx otherwise).",
    S,
    (m) =>
      each((g, spool) => {
        if (g.cfg.relayAddress && g.relay) m.set({ spool }, g.relay.enforcing ? 1 : 0);
      }),
  );
  gauge('peer_up', '1 when the last SMTP probe of a peer got a 2xx greeting.', ['peer', 'role'], (m) => {
    for (const p of src.peers()) if (p.up !== null) m.set({ peer: p.name, role: p.role }, p.up ? 1 : 0);
  });
  gauge(
    'peer_probe_duration_seconds',
    'Duration of the last SMTP probe of a peer.',
    ['peer', 'role'],
    (m) => {
      for (const p of src.peers()) if (p.ms !== null) m.set({ peer: p.name, role: p.role }, p.ms / 1000);
    },
  );
  gauge(
    'config_last_reload_successful',
    'Whether the last configuration reload attempt was successful.',
    [],
    (m) => m.set(src.reload().ok ? 1 : 0),
  );
  gauge(
    'config_last_reload_success_timestamp_seconds',
    'Timestamp of the last successful configuration reload.',
    [],
    (m) => {
      const t = src.reload().lastSuccess;
      if (t !== null) m.set(t);
    },
  );
  return reg;
}
