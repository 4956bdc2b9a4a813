// The observation interface every MTA source implements (one small interface, as
// node_exporter's collectors have): the agent only sees Observations.
import type { FsFigures } from './statfs.js';
import type { QueueTotals, StrayKind } from './queue-state.js';

export interface Observation {
  /** the last observation succeeded: statfs answered and input/ was listed */
  up: boolean;
  error: string | null;
  fs: FsFigures | null;
  /** first listing done: the message count is exact */
  listed: boolean;
  /** bytes and frozen figures complete */
  complete: boolean;
  queue: (QueueTotals & { oldest: number | null }) | null;
  strays: Record<StrayKind, number>;
  /** monotonic ms of this observation */
  atMs: number;
}

export interface SourceStats {
  events: number;
  batches: number;
  scans: number;
  rescans: number;
  corrections: number;
  lastDrift: number;
  lastListMs: number;
  lastDetailMs: number;
  lastRescanSeconds: number;
  scanErrors: number;
  reinits: number;
}

export interface SpoolSource {
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
  /** called every second: re-reads statfs, notices a spool that vanished or came back */
  tick(): void;
  /** full reconciliation rescan; resolves when it is done */
  rescan(): Promise<void>;
  observe(): Observation;
  readonly stats: SourceStats;
  /** set by the agent: runs after every batch of changes (event-driven reaction) */
  onChange: (() => void) | null;
}
