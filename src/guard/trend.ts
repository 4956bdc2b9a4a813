// Fill rate: least-squares slope of used bytes and used inodes over a sliding window (60 s).
export interface Sample {
  t: number; // seconds
  bytes: number;
  inodes: number;
}

export class Trend {
  private samples: Sample[] = [];
  constructor(
    readonly windowSeconds = 60,
    /** below this span the slope is not trusted */
    readonly minSpanSeconds = 2,
    /** at most one stored sample per this many seconds (the newest replaces the last) */
    readonly resolutionSeconds = 0.1,
  ) {}

  add(s: Sample): void {
    const last = this.samples[this.samples.length - 1];
    if (last && s.t < last.t) {
      this.samples = [s]; // clock went backwards (checked first: it is also "within the resolution")
    } else if (
      last &&
      s.t - this.samples[Math.max(0, this.samples.length - 2)].t < this.resolutionSeconds &&
      this.samples.length > 1
    ) {
      this.samples[this.samples.length - 1] = s;
    } else this.samples.push(s);
    const cut = s.t - this.windowSeconds;
    let i = 0;
    while (i < this.samples.length - 1 && this.samples[i].t < cut) i++;
    if (i) this.samples.splice(0, i);
  }

  clear(): void {
    this.samples = [];
  }

  get size(): number {
    return this.samples.length;
  }

  /** Slopes per second, or null while the window is too short. */
  slopes(): { bytes: number; inodes: number } | null {
    const n = this.samples.length;
    if (n < 2) return null;
    const t0 = this.samples[0].t;
    const span = this.samples[n - 1].t - t0;
    if (span < this.minSpanSeconds) return null;
    let st = 0;
    let sb = 0;
    let si = 0;
    for (const s of this.samples) {
      st += s.t - t0;
      sb += s.bytes;
      si += s.inodes;
    }
    const mt = st / n;
    const mb = sb / n;
    const mi = si / n;
    let stt = 0;
    let stb = 0;
    let sti = 0;
    for (const s of this.samples) {
      const dt = s.t - t0 - mt;
      stt += dt * dt;
      stb += dt * (s.bytes - mb);
      sti += dt * (s.inodes - mi);
    }
    if (stt === 0) return null;
    return { bytes: stb / stt, inodes: sti / stt };
  }
}

/** Seconds until full: the smaller prediction of bytes and inodes; +Inf when neither grows. */
export function timeToFull(
  slopes: { bytes: number; inodes: number } | null,
  availBytes: number,
  freeInodes: number,
  limited: { bytes: boolean; inodes: boolean },
): number {
  if (!slopes) return Number.POSITIVE_INFINITY;
  let best = Number.POSITIVE_INFINITY;
  if (limited.bytes && slopes.bytes > 0) best = Math.min(best, availBytes / slopes.bytes);
  if (limited.inodes && slopes.inodes > 0) best = Math.min(best, freeInodes / slopes.inodes);
  return Math.max(0, best);
}
