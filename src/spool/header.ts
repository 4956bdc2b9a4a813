// Parser for the dash-options of an Exim `-H` spool file.
//
// Layout (Exim's spool_in.c): line 1 `<id>-H`, line 2 `<login> <uid> <gid>`,
// line 3 `<sender>`, line 4 `<received time> <warning count>`, then lines
// starting with `-` (the options), then the non-recipients tree, the
// recipients and the headers. Options `-acl`, `-aclc` and `-aclm` carry a
// value of a stated length on the lines after them, which may itself contain
// newlines and dashes, so the options are read, not a fixed number of bytes.

export interface HeaderInfo {
  frozen: boolean;
  /** `-frozen <time>`, epoch seconds, when frozen */
  frozenSince?: number;
  /** received time from line 4 */
  received?: number;
  /** id named on line 1 (without `-H`) */
  id?: string;
}

export type HeaderResult =
  | { ok: true; info: HeaderInfo /** bytes of the file the options needed */; consumed: number }
  | { ok: false; incomplete: boolean; error: string };

/**
 * Parses `buf` (the start of a `-H` file). `incomplete: true` means the buffer
 * ended before the options did: read more and call again. Never throws.
 */
export function parseHeader(buf: Uint8Array, eof = true): HeaderResult {
  let pos = 0;
  const len = buf.length;
  const line = (): string | null => {
    const nl = buf.indexOf(10, pos);
    if (nl < 0) return null;
    const s = Buffer.from(buf.buffer, buf.byteOffset + pos, nl - pos).toString('latin1');
    pos = nl + 1;
    return s;
  };
  const more = (error: string): HeaderResult => ({ ok: false, incomplete: !eof, error });
  const l1 = line();
  if (l1 === null) return more('truncated before line 1');
  if (!l1.endsWith('-H')) return { ok: false, incomplete: false, error: 'line 1 is not "<id>-H"' };
  for (let i = 0; i < 2; i++) if (line() === null) return more(`truncated before line ${i + 3}`);
  const l4 = line();
  if (l4 === null) return more('truncated before line 4');
  const m4 = /^(\d+) \d+$/.exec(l4);
  if (!m4) return { ok: false, incomplete: false, error: 'line 4 is not "<time> <warning count>"' };
  const info: HeaderInfo = { frozen: false, received: Number(m4[1]), id: l1.slice(0, -2) };
  for (;;) {
    if (pos >= len) return more('truncated in the options');
    if (buf[pos] !== 45 /* - */) return { ok: true, info, consumed: pos };
    const opt = line();
    if (opt === null) return more('truncated in the options');
    // `--name` marks a tainted value (Exim 4.94+); the option is the same
    let name = opt.startsWith('--') ? opt.slice(2) : opt.slice(1);
    // `--(<lookup type>)name`: a value quoted for that lookup (Exim 4.97+); the option is the same
    if (name.startsWith('(')) {
      const close = name.indexOf(')');
      if (close < 0) return { ok: false, incomplete: false, error: `malformed option "${opt.slice(0, 40)}"` };
      name = name.slice(close + 1);
    }
    if (name.startsWith('acl')) {
      // `-acl <n> <len>` (old), `-aclc <name> <len>`, `-aclm <name> <len>`: value follows, then "\n"
      const m = /^acl[cm]? \S+ (\d+)$/.exec(name);
      if (!m) return { ok: false, incomplete: false, error: `malformed option "${opt.slice(0, 40)}"` };
      const vlen = Number(m[1]);
      if (pos + vlen + 1 > len) return more('truncated in an ACL variable');
      pos += vlen;
      if (buf[pos] === 10) pos++;
      continue;
    }
    if (name === 'frozen' || name.startsWith('frozen ')) {
      info.frozen = true;
      const t = Number(name.slice(7));
      if (Number.isFinite(t) && t > 0) info.frozenSince = t;
    }
  }
}
