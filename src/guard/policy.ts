// The defer decision as a pure function of (observation, config, previous state, override, now).
import type { DeferReason, SpoolConfig } from '../config.js';

export interface Inputs {
  /** null when the spool cannot be observed: the state is kept as it was */
  usedBytesRatio: number | null;
  usedInodesRatio: number | null;
  queueMessages: number | null;
  timeToFullSeconds: number;
  memoryAvailableBytes: number | null;
  observable: boolean;
}

export interface Override {
  mode: 'on' | 'off';
  /** epoch seconds, null: until `auto` (only for `on`) */
  until: number | null;
  setAt: number;
}

export interface DeferState {
  active: boolean;
  reasons: DeferReason[];
  /** epoch seconds defer mode was entered */
  since: number | null;
  /** epoch seconds a threshold first held in this defer period (min_defer_seconds counts from it) */
  thresholdSince: number | null;
}

export const INITIAL_STATE: DeferState = { active: false, reasons: [], since: null, thresholdSince: null };

export type Thresholds = Pick<SpoolConfig, 'defer' | 'release' | 'minDeferSeconds'>;

/** Enter conditions that hold now. */
export function enterReasons(i: Inputs, c: Thresholds): DeferReason[] {
  const r: DeferReason[] = [];
  const d = c.defer;
  if (d.usedBytesRatio !== null && i.usedBytesRatio !== null && i.usedBytesRatio >= d.usedBytesRatio)
    r.push('bytes');
  if (d.usedInodesRatio !== null && i.usedInodesRatio !== null && i.usedInodesRatio >= d.usedInodesRatio)
    r.push('inodes');
  if (d.queueMessages !== null && i.queueMessages !== null && i.queueMessages >= d.queueMessages)
    r.push('queue');
  if (d.timeToFullSeconds !== null && i.timeToFullSeconds < d.timeToFullSeconds) r.push('time_to_full');
  if (
    d.memoryAvailableBytes !== null &&
    i.memoryAvailableBytes !== null &&
    i.memoryAvailableBytes < d.memoryAvailableBytes
  ) {
    r.push('memory');
  }
  return r;
}

/** Resources still above their release line (they hold defer mode on in the hysteresis band). */
export function releaseBlockers(i: Inputs, c: Thresholds): DeferReason[] {
  const r: DeferReason[] = [];
  const l = c.release;
  if (l.usedBytesRatio !== null && i.usedBytesRatio !== null && i.usedBytesRatio > l.usedBytesRatio)
    r.push('bytes');
  if (l.usedInodesRatio !== null && i.usedInodesRatio !== null && i.usedInodesRatio > l.usedInodesRatio)
    r.push('inodes');
  if (l.queueMessages !== null && i.queueMessages !== null && i.queueMessages > l.queueMessages)
    r.push('queue');
  return r;
}

export interface Decision {
  state: DeferState;
  /** the override after expiry was applied (null when none holds) */
  override: Override | null;
  overrideExpired: boolean;
  entered: boolean;
  released: boolean;
}

export function decide(
  i: Inputs,
  c: Thresholds,
  prev: DeferState,
  ov: Override | null,
  now: number,
): Decision {
  let override = ov;
  let overrideExpired = false;
  if (override && override.until !== null && now >= override.until) {
    override = null;
    overrideExpired = true;
  }
  const out = (state: DeferState): Decision => ({
    state,
    override,
    overrideExpired,
    entered: state.active && !prev.active,
    released: !state.active && prev.active,
  });
  if (override?.mode === 'off') return out({ ...INITIAL_STATE });
  if (!i.observable) {
    // nothing known: keep defer mode as it was (a manual `on` still holds it; an ended one leaves the rest)
    if (override?.mode === 'on') {
      const reasons = prev.reasons.includes('manual')
        ? prev.reasons
        : (['manual', ...prev.reasons] as DeferReason[]);
      return out({ ...prev, active: true, reasons, since: prev.since ?? now });
    }
    if (prev.active && prev.reasons.includes('manual') && prev.thresholdSince === null)
      return out({ ...INITIAL_STATE });
    return out({ ...prev, reasons: prev.reasons.filter((r) => r !== 'manual') });
  }
  const holding = enterReasons(i, c);
  if (override?.mode === 'on') {
    return out({
      active: true,
      reasons: ['manual', ...holding],
      since: prev.active ? (prev.since ?? now) : now,
      thresholdSince: holding.length ? (prev.thresholdSince ?? now) : prev.thresholdSince,
    });
  }
  if (holding.length) {
    return out({
      active: true,
      reasons: holding,
      since: prev.active ? (prev.since ?? now) : now,
      thresholdSince: prev.thresholdSince ?? now,
    });
  }
  if (!prev.active) return out({ ...INITIAL_STATE });
  // defer mode held only by the operator ends with the override
  if (prev.thresholdSince === null) return out({ ...INITIAL_STATE });
  const blockers = releaseBlockers(i, c);
  // a manual `on` has just ended: defer mode ends at once unless a threshold holds (the min hold is not for the operator)
  const manualEnded = prev.reasons.includes('manual');
  const heldLongEnough = manualEnded || now - prev.thresholdSince >= c.minDeferSeconds;
  if (blockers.length === 0 && heldLongEnough) return out({ ...INITIAL_STATE });
  const reasons = blockers.length ? blockers : prev.reasons.filter((r) => r !== 'manual');
  return out({ ...prev, reasons: reasons.length ? reasons : prev.reasons });
}
