// The queue as the agent keeps it between scans: one slot per message id and
// directory, with the sizes of its -H/-D/-J files and its frozen flag, and
// running totals, so a scrape or a policy decision costs O(1).
//
// The slots are columns of typed arrays (struct of arrays), not one object per
// message: at 100k messages that is about 15 MB less heap and 100k fewer objects
// for every garbage collection to mark (bench/RESULTS.md).
import { idArrivalTime } from './exim-id.js';
import { F_D, F_H, F_J } from './scan.js';

export type StrayKind = 'header_temp' | 'data_without_header' | 'journal_without_header' | 'other';
export const STRAY_KINDS: readonly StrayKind[] = [
  'header_temp',
  'data_without_header',
  'journal_without_header',
  'other',
];

/** One message as `get` reports it (a copy: change it through `update`). */
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
}

export type EntryPatch = Partial<
  Pick<Entry, 'h' | 'd' | 'j' | 'frozen' | 'badHeader' | 'sized' | 'ino' | 'mtime'>
>;

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

const FROZEN = 1;
const BAD_HEADER = 2;
const SIZED = 4;

export class QueueState {
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

  /** per directory ('' is input/ itself): message id -> slot */
  private index = new Map<string, Map<string, number>>();
  private cap = 0;
  /** slots ever handed out; below it, a free slot has id '' */
  private top = 0;
  private free: number[] = [];
  private subs: string[] = [];
  private ids: string[] = [];
  private h = new Float64Array(0);
  private d = new Float64Array(0);
  private j = new Float64Array(0);
  private ino = new Float64Array(0);
  private mtime = new Float64Array(0);
  private arrival = new Float64Array(0);
  private flags = new Uint8Array(0);
  /** id of the last rescan whose listing saw the message (so a rescan keeps no set of 100k names) */
  private seen = new Uint32Array(0);

  /** Messages (and -D/-J without -H) held. */
  get size(): number {
    return this.top - this.free.length;
  }

  private slotOf(sub: string, id: string): number | undefined {
    return this.index.get(sub)?.get(id);
  }

  private grow(): void {
    const cap = Math.max(1024, this.cap * 2);
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.h = f64(this.h);
    this.d = f64(this.d);
    this.j = f64(this.j);
    this.ino = f64(this.ino);
    this.mtime = f64(this.mtime);
    this.arrival = f64(this.arrival);
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    this.flags = flags;
    const seen = new Uint32Array(cap);
    seen.set(this.seen);
    this.seen = seen;
    this.cap = cap;
  }

  /** A new slot, not yet in the index. */
  private alloc(sub: string, id: string, arrival: number): number {
    let s = this.free.pop();
    if (s === undefined) {
      if (this.top === this.cap) this.grow();
      s = this.top++;
    }
    this.subs[s] = sub;
    this.ids[s] = id;
    this.h[s] = -1;
    this.d[s] = -1;
    this.j[s] = -1;
    this.ino[s] = 0;
    this.mtime[s] = 0;
    this.arrival[s] = arrival;
    this.flags[s] = SIZED;
    this.seen[s] = 0;
    return s;
  }

  private release(s: number, indexed: boolean): void {
    if (indexed) {
      const m = this.index.get(this.subs[s]);
      m?.delete(this.ids[s]);
      if (m && m.size === 0) this.index.delete(this.subs[s]);
    }
    this.subs[s] = '';
    this.ids[s] = '';
    this.free.push(s);
  }

  private insert(s: number): void {
    const sub = this.subs[s];
    let m = this.index.get(sub);
    if (!m) {
      m = new Map();
      this.index.set(sub, m);
    }
    m.set(this.ids[s], s);
  }

  /** Adds (1) or removes (-1) a slot's share of the totals; `arrival` false leaves the arrival
   * counts alone (an update that keeps the message queued: its arrival time never changes). */
  private account(s: number, sign: 1 | -1, arrival = true): void {
    const t = this.t;
    const h = this.h[s];
    if (h >= 0) {
      const f = this.flags[s];
      t.messages += sign;
      t.bytes += sign * (h + Math.max(this.d[s], 0) + Math.max(this.j[s], 0));
      if (f & FROZEN) t.frozen += sign;
      if (f & BAD_HEADER) t.badHeaders += sign;
      if (!(f & SIZED)) t.unsized += sign;
      const at = this.arrival[s];
      if (arrival && !Number.isNaN(at)) {
        // keys relative to ARRIVAL_BASE stay small integers (V8 Smis): much faster Map operations
        const k = at - ARRIVAL_BASE;
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
    } else if (this.d[s] >= 0) {
      t.dataWithoutHeader += sign;
    } else if (this.j[s] >= 0) {
      t.journalWithoutHeader += sign;
    }
  }

  private entryAt(s: number): Entry {
    const f = this.flags[s];
    return {
      sub: this.subs[s],
      id: this.ids[s],
      h: this.h[s],
      d: this.d[s],
      j: this.j[s],
      frozen: (f & FROZEN) !== 0,
      badHeader: (f & BAD_HEADER) !== 0,
      sized: (f & SIZED) !== 0,
      arrival: this.arrival[s],
      ino: this.ino[s],
      mtime: this.mtime[s],
    };
  }

  /** A copy of one message's entry. */
  get(sub: string, id: string): Entry | undefined {
    const s = this.slotOf(sub, id);
    return s === undefined ? undefined : this.entryAt(s);
  }

  /** Which of a message's files the state holds (the scan's F_H/F_D/F_J bits; 0 when none); with `scanId`, marks it seen by that scan. */
  presence(sub: string, id: string, scanId = 0): number {
    const s = this.slotOf(sub, id);
    if (s === undefined) return 0;
    if (scanId) this.seen[s] = scanId;
    return this.have(s);
  }

  private have(s: number): number {
    return (this.h[s] >= 0 ? F_H : 0) | (this.d[s] >= 0 ? F_D : 0) | (this.j[s] >= 0 ? F_J : 0);
  }

  /** A rescan's comparison of one file: true when the state holds it with this size (and, for -H, inode and mtime). */
  same(
    sub: string,
    id: string,
    kind: 'H' | 'D' | 'J',
    size: number,
    ino: number,
    mtime: number,
  ): boolean | undefined {
    const s = this.slotOf(sub, id);
    if (s === undefined) return undefined;
    if (kind === 'H') return this.h[s] === size && this.ino[s] === ino && this.mtime[s] === mtime;
    return (kind === 'D' ? this.d[s] : this.j[s]) === size;
  }

  /** Messages the scan `scanId` did not mark seen, with what the state holds of each. */
  unseen(scanId: number): { sub: string; id: string; have: number }[] {
    const out: { sub: string; id: string; have: number }[] = [];
    for (let s = 0; s < this.top; s++) {
      if (this.ids[s] === '' || this.seen[s] === scanId) continue;
      out.push({ sub: this.subs[s], id: this.ids[s], have: this.have(s) });
    }
    return out;
  }

  /** Messages whose sizes the first scan's listing left unknown. */
  unsizedMessages(): { sub: string; id: string }[] {
    const out: { sub: string; id: string }[] = [];
    for (let s = 0; s < this.top; s++)
      if (this.ids[s] !== '' && !(this.flags[s] & SIZED)) out.push({ sub: this.subs[s], id: this.ids[s] });
    return out;
  }

  /** Applies a change to one message: `patch` fields replace the entry's. */
  update(sub: string, id: string, patch: EntryPatch): void {
    let s = this.slotOf(sub, id);
    const fresh = s === undefined;
    // queued before and after: its arrival stays counted as it is
    let stays = false;
    if (s === undefined) s = this.alloc(sub, id, idArrivalTime(id));
    else {
      stays = this.h[s] >= 0 && (patch.h === undefined || patch.h >= 0);
      this.account(s, -1, !stays);
    }
    if (patch.h !== undefined) this.h[s] = patch.h;
    if (patch.d !== undefined) this.d[s] = patch.d;
    if (patch.j !== undefined) this.j[s] = patch.j;
    if (patch.ino !== undefined) this.ino[s] = patch.ino;
    if (patch.mtime !== undefined) this.mtime[s] = patch.mtime;
    let f = this.flags[s];
    if (patch.frozen !== undefined) f = patch.frozen ? f | FROZEN : f & ~FROZEN;
    if (patch.badHeader !== undefined) f = patch.badHeader ? f | BAD_HEADER : f & ~BAD_HEADER;
    if (patch.sized !== undefined) f = patch.sized ? f | SIZED : f & ~SIZED;
    this.flags[s] = f;
    if (this.h[s] < 0 && this.d[s] < 0 && this.j[s] < 0) {
      this.release(s, !fresh);
      return;
    }
    if (fresh) this.insert(s);
    this.account(s, 1, !stays);
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
    let s = this.slotOf(sub, id);
    if (s !== undefined) {
      this.account(s, -1);
      this.arrival[s] = arrival;
      this.ino[s] = 0;
      this.mtime[s] = 0;
    } else {
      s = this.alloc(sub, id, arrival);
      this.insert(s);
    }
    this.h[s] = header ? 0 : -1;
    this.d[s] = data ? 0 : -1;
    this.j[s] = journal ? 0 : -1;
    this.flags[s] = (header === 'odd' ? BAD_HEADER : 0) | (header !== 'file' ? SIZED : 0);
    this.account(s, 1);
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
    for (const id of [...(this.index.get(sub)?.keys() ?? [])]) this.update(sub, id, { h: -1, d: -1, j: -1 });
    for (const k of [...this.strays.keys()]) if (k.startsWith(`${sub}/`)) this.setStray(k, null);
  }

  clear(): void {
    this.index.clear();
    this.cap = 0;
    this.top = 0;
    this.free = [];
    this.subs = [];
    this.ids = [];
    this.h = new Float64Array(0);
    this.d = new Float64Array(0);
    this.j = new Float64Array(0);
    this.ino = new Float64Array(0);
    this.mtime = new Float64Array(0);
    this.arrival = new Float64Array(0);
    this.flags = new Uint8Array(0);
    this.seen = new Uint32Array(0);
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
