// SMTP greeting probe: connect, read the greeting, (optionally EHLO), QUIT, close.
//
// Used by the closed-loop check (does the relay's own listener answer 4xx while
// the flag exists and 2xx otherwise?) and by the peer probes (retry host,
// backup MX). It never throws: every failure comes back as `{ ok: false, error }`,
// and the whole exchange is bounded by `timeoutMs`.
import net from 'node:net';

export interface ProbeOptions {
  /** Bound on the whole exchange up to the greeting (and the EHLO reply), default 5000 ms. */
  timeoutMs?: number;
  /** Source address to connect from (relays often accept loopback early in their ACLs). */
  localAddress?: string;
  /** When set, send `EHLO <name>` after a 2xx greeting and require a 2xx answer too. */
  ehlo?: string;
}

export interface ProbeResult {
  /** True when the greeting (and the EHLO answer, if asked for) was 2xx. */
  ok: boolean;
  /** The greeting's reply code (220, 421, 554 ...), absent when none was read. */
  code?: number;
  /** The greeting's text, lines of a multi-line reply joined with `\n`. */
  line?: string;
  /** The EHLO reply code, when `ehlo` was asked for and a reply came. */
  ehloCode?: number;
  /** Why the probe failed (connect error, timeout, garbage), absent on success. */
  error?: string;
  /** Milliseconds from the start until the greeting (or the failure). */
  ms: number;
}

/** Splits `host:port`, `[v6]:port` (or a bare `v6` with a port after the last colon). */
export function parseHostPort(address: string): { host: string; port: number } | null {
  let host: string;
  let portStr: string;
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  if (m) {
    host = m[1];
    portStr = m[2];
  } else {
    const i = address.lastIndexOf(':');
    if (i <= 0) return null;
    host = address.slice(0, i);
    portStr = address.slice(i + 1);
    if (host.includes(':') && net.isIPv6(host) === false) return null;
  }
  if (!/^\d+$/.test(portStr)) return null;
  const port = Number(portStr);
  if (port < 1 || port > 65535 || host === '') return null;
  return { host, port };
}

const MAX_REPLY_BYTES = 16 * 1024;

/** Reads one SMTP reply (possibly multi-line) from a growing buffer; null while incomplete. */
function takeReply(buf: string): { code: number; lines: string[]; rest: string } | 'bad' | null {
  const lines: string[] = [];
  let pos = 0;
  for (;;) {
    const nl = buf.indexOf('\n', pos);
    if (nl < 0) return buf.length - pos > MAX_REPLY_BYTES ? 'bad' : null;
    const line = buf.slice(pos, nl).replace(/\r$/, '');
    pos = nl + 1;
    const m = /^(\d{3})([ -]|$)(.*)$/.exec(line);
    if (!m) return 'bad';
    if (lines.length > 0 && m[1] !== lines[0].slice(0, 3)) return 'bad';
    lines.push(line);
    if (m[2] !== '-') return { code: Number(m[1]), lines, rest: buf.slice(pos) };
  }
}

export function probeGreeting(address: string, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, error: `bad address ${JSON.stringify(address)}`, ms: 0 });

  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    let buf = '';
    let greeting: { code: number; lines: string[] } | undefined;
    let socket: net.Socket;

    const finish = (r: Omit<ProbeResult, 'ms'>, quit: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, ms: elapsed() });
      // Leave politely, but never hang around: whatever the peer does, the socket is gone soon.
      if (quit && socket.writable) {
        socket.end('QUIT\r\n');
        setTimeout(() => socket.destroy(), 1000).unref();
      } else {
        socket.destroy();
      }
    };
    const timer = setTimeout(() => {
      finish(
        {
          ok: false,
          code: greeting?.code,
          line: greeting?.lines.join('\n'),
          error: greeting
            ? `timed out after ${timeoutMs} ms waiting for the EHLO reply`
            : `timed out after ${timeoutMs} ms waiting for the greeting`,
        },
        greeting !== undefined,
      );
    }, timeoutMs);

    try {
      socket = net.connect({ host: hp.host, port: hp.port, localAddress: opts.localAddress });
    } catch (e) {
      clearTimeout(timer);
      done = true;
      resolve({ ok: false, error: (e as Error).message, ms: elapsed() });
      return;
    }
    socket.setEncoding('latin1');
    socket.on('error', (e: NodeJS.ErrnoException) => {
      // After the result is out, errors (EPIPE on QUIT to a peer that hung up after 421) are expected.
      finish(
        {
          ok: false,
          code: greeting?.code,
          line: greeting?.lines.join('\n'),
          error: e.code ? `${e.code}: ${e.message}` : e.message,
        },
        false,
      );
    });
    socket.on('close', () => {
      finish(
        {
          ok: false,
          code: greeting?.code,
          line: greeting?.lines.join('\n'),
          error: greeting
            ? 'connection closed before the EHLO reply'
            : 'connection closed before the greeting',
        },
        false,
      );
    });
    socket.on('data', (chunk: string) => {
      if (done) return;
      buf += chunk;
      for (;;) {
        const r = takeReply(buf);
        if (r === null) return;
        if (r === 'bad') {
          finish(
            { ok: false, code: greeting?.code, line: greeting?.lines.join('\n'), error: 'not an SMTP reply' },
            false,
          );
          return;
        }
        buf = r.rest;
        if (!greeting) {
          greeting = r;
          const ok = r.code >= 200 && r.code < 300;
          if (!ok || !opts.ehlo) {
            finish({ ok, code: r.code, line: r.lines.join('\n') }, true);
            return;
          }
          socket.write(`EHLO ${opts.ehlo}\r\n`);
        } else {
          const ok = r.code >= 200 && r.code < 300;
          finish(
            {
              ok,
              code: greeting.code,
              line: greeting.lines.join('\n'),
              ehloCode: r.code,
              error: ok ? undefined : `EHLO answered ${r.lines.join(' ')}`,
            },
            true,
          );
          return;
        }
      }
    });
  });
}
