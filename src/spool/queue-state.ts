// The queue as the agent keeps it between scans: one entry per message id and
// directory, with the sizes of its -H/-D/-J files and its frozen flag, and
// running totals, so a scrape or a policy decision costs O(1).
import { idArrivalTime } from './exim-id.js';

export type StrayKind = 'header_temp' | 'data_without_header' | 'journal_without_header' | 'other';
export const STRAY_KINDS: readonly StrayKind[] = [
  'header_temp',
  'data_without_header',
  'journal_without_header',
  'other',
];

export interface Entry {
  sub: string;
  id: string;
  /** sizes, -1 when the file does not exist */
  h: number;
  d: number;
  j: number;
  frozen: boolean;
  /** header could not be parsed (garbage or truncated) */
  badHeader: boolean;
  /** size known (false right after a listing, until the details pass) */
  sized: boolean;
  arrival: number;
  /** inode and mtime (ms) of the -H file as last read */
  ino: number;
  mtime: number;
  /** id of the last rescan whose listing saw this message (so a rescan keeps no set of 100k names) */
  seen: number;
}

export interface QueueTotals {
  messages: number;
  bytes: number;
  frozen: number;
  badHeaders: number;
  unsized: number;
  dataWithoutHeader: number;
  journalWithoutHeader: number;
}

/** 2020-09-13: arrival times are kept as offsets from it (an id's time is at most 62^6 - 1 s). */
const ARRIVAL_BASE = 1_600_000_000;

export class QueueState {
  readonly entries = new Map<string, Entry>();
  /** names in input/ that are not message files: key `sub/name` -> kind */
  readonly strays = new Map<string, StrayKind>();
  readonly t: QueueTotals = {
    messages: 0,
    bytes: 0,
    frozen: 0,
    badHeaders: 0,
    unsized: 0,
    dataWithoutHeader: 0,
    journalWithoutHeader: 0,
  };
  private strayCounts = { header_temp: 0, other: 0 };
  private arrivals = new Map<number, number>();
  private oldestCache: number | null = null;
  private oldestDirty = false;

  static key(sub: string, id: string): string {
    return `${sub}/${id}`;
  }

  /** Adds (1) or removes (-1) an entry's share of the totals; `arrival` false leaves the arrival
   * counts alone (an update that keeps the message queued: its arrival time never changes). */
  private account(e: Entry, sign: 1 | -1, arrival = true): void {
    const t = this.t;
    if (e.h >= 0) {
      t.messages += sign;
      t.bytes += sign * (e.h + Math.max(e.d, 0) + Math.max(e.j, 0));
      if (e.frozen) t.frozen += sign;
      if (e.badHeader) t.badHeaders += sign;
      if (!e.sized) t.unsized += sign;
      if (arrival && !Number.isNaN(e.arrival)) {
        // keys relative to ARRIVAL_BASE stay small integers (V8 Smis): much faster Map operations
        const k = e.arrival - ARRIVAL_BASE;
        const n = (this.arrivals.get(k) ?? 0) + sign;
        if (n <= 0) {
          this.arrivals.delete(k);
          if (this.oldestCache === k) this.oldestDirty = true;
        } else {
          this.arrivals.set(k, n);
          if (sign > 0) {
            if (this.oldestCache === null) this.oldestDirty = true;
            else if (k < this.oldestCache) this.oldestCache = k;
          }
        }
      }
    } else if (e.d >= 0) {
      t.dataWithoutHeader += sign;
    } else if (e.j >= 0) {
      t.journalWithoutHeader += sign;
    }
  }

  get(sub: string, id: string): Entry | undefined {
    return this.entries.get(QueueState.key(sub, id));
  }

  /** Applies a change to one message: `patch` fields replace the entry's. */
  update(
    sub: string,
    id: string,
    patch: Partial<Pick<Entry, 'h' | 'd' | 'j' | 'frozen' | 'badHeader' | 'sized' | 'ino' | 'mtime'>>,
  ): void {
    const key = QueueState.key(sub, id);
    let e = this.entries.get(key);
    const fresh = e === undefined;
    // queued before and after: its arrival stays counted as it is
    const stays = e !== undefined && e.h >= 0 && (patch.h === undefined || patch.h >= 0);
    if (e) this.account(e, -1, !stays);
    else {
      e = {
        sub,
        id,
        h: -1,
        d: -1,
        j: -1,
        frozen: false,
        badHeader: false,
        sized: true,
        arrival: idArrivalTime(id),
        ino: 0,
        mtime: 0,
        seen: 0,
      };
    }
    Object.assign(e, patch);
    if (e.h < 0 && e.d < 0 && e.j < 0) {
      this.entries.delete(key);
      return;
    }
    if (fresh) this.entries.set(key, e);
    this.account(e, 1, !stays);
  }

  /** Fast path of the first listing: a message not seen before (sizes follow from the details pass). */
  insertListed(
    sub: string,
    id: string,
    header: 'file' | 'odd' | null,
    data: boolean,
    journal: boolean,
    arrival: number,
  ): void {
    const key = `${sub}/${id}`;
    const old = this.entries.get(key);
    if (old) this.account(old, -1);
    const e: Entry = {
      sub,
      id,
      h: header ? 0 : -1,
      d: data ? 0 : -1,
      j: journal ? 0 : -1,
      frozen: false,
      badHeader: header === 'odd',
      sized: header !== 'file',
      arrival,
      ino: 0,
      mtime: 0,
      seen: 0,
    };
    this.entries.set(key, e);
    this.account(e, 1);
  }

  setStray(key: string, kind: 'header_temp' | 'other' | null): void {
    const old = this.strays.get(key);
    if (old === 'header_temp' || old === 'other') this.strayCounts[old]--;
    if (kind) {
      this.strays.set(key, kind);
      this.strayCounts[kind]++;
    } else this.strays.delete(key);
  }

  /** Forgets everything under one directory (a split directory removed). */
  dropSub(sub: string): void {
    for (const e of [...this.entries.values()])
      if (e.sub === sub) this.update(e.sub, e.id, { h: -1, d: -1, j: -1 });
    for (const k of [...this.strays.keys()]) if (k.startsWith(`${sub}/`)) this.setStray(k, null);
  }

  clear(): void {
    this.entries.clear();
    this.strays.clear();
    for (const k of Object.keys(this.t) as (keyof QueueTotals)[]) this.t[k] = 0;
    this.strayCounts = { header_temp: 0, other: 0 };
    this.arrivals.clear();
    this.oldestCache = null;
    this.oldestDirty = false;
  }

  strayCount(kind: StrayKind): number {
    if (kind === 'data_without_header') return this.t.dataWithoutHeader;
    if (kind === 'journal_without_header') return this.t.journalWithoutHeader;
    return this.strayCounts[kind];
  }

  /** Arrival time of the oldest queued message (from its id), or null when empty. */
  oldest(): number | null {
    if (this.oldestDirty) {
      let min: number | null = null;
      for (const t of this.arrivals.keys()) if (min === null || t < min) min = t;
      this.oldestCache = min;
      this.oldestDirty = false;
    }
    return this.arrivals.size && this.oldestCache !== null ? this.oldestCache + ARRIVAL_BASE : null;
  }
}
