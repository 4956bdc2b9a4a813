// Progress for long saves and restores: a bar on a terminal, a plain line every
// few seconds otherwise (the journal at shutdown). Called from synchronous
// loops, so it looks at the clock instead of relying on timers.

export interface ProgressOptions {
  verb: string;
  totalMessages: number;
  totalBytes: number;
  stream?: NodeJS.WriteStream;
  /** seconds between plain lines */
  interval?: number;
  quiet?: boolean;
}

export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}

export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;
  private readonly intervalMs: number;
  messages = 0;
  bytes = 0;
  private drewBar = false;

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.intervalMs = this.tty ? 200 : (o.interval ?? 5) * 1000;
    this.lastDraw = this.started;
  }

  setTotals(messages: number, bytes: number): void {
    this.o.totalMessages = messages;
    this.o.totalBytes = bytes;
  }

  tick(messages: number, bytes: number): void {
    this.messages += messages;
    this.bytes += bytes;
    if (this.o.quiet) return;
    const now = Date.now();
    if (now - this.lastDraw < this.intervalMs) return;
    this.lastDraw = now;
    this.draw(now);
  }

  private draw(now: number): void {
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const rate = this.messages / secs;
    const tot = this.o.totalMessages;
    const pct = tot > 0 ? Math.min(1, this.messages / tot) : 0;
    const figures =
      `${this.messages}/${tot} messages, ${formatBytes(this.bytes)}/${formatBytes(this.o.totalBytes)}, ` +
      `${Math.round(rate)} msg/s`;
    if (this.tty) {
      const width = 30;
      const full = Math.round(pct * width);
      const bar = '#'.repeat(full) + '-'.repeat(width - full);
      this.stream.write(`\r${this.o.verb} [${bar}] ${(pct * 100).toFixed(0).padStart(3)}% ${figures}\x1b[K`);
      this.drewBar = true;
    } else {
      this.stream.write(`spool-guard ${this.o.verb}: ${(pct * 100).toFixed(0)}% ${figures}\n`);
    }
  }

  /** Clears the bar line (before the summary is printed). */
  finish(): void {
    if (this.drewBar) this.stream.write('\r\x1b[K');
  }

  elapsedSeconds(): number {
    return (Date.now() - this.started) / 1000;
  }
}
