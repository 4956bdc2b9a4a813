// Exim message ids and spool file names.
//
// Up to Exim 4.96 an id is `TTTTTT-PPPPPP-SS` (16 characters); from 4.97 it is
// `TTTTTT-PPPPPPPPPPP-SSSS` (23 characters). Both use the base-62 alphabet
// 0-9A-Za-z and both start with the arrival time in epoch seconds (6 digits).
// The split-spool subdirectory is the 6th character of the id.

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const OLD_ID_LENGTH = 16;
export const NEW_ID_LENGTH = 23;

const B62 = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE62.length; i++) B62[BASE62.charCodeAt(i)] = i;

/** Value of a base-62 string, or NaN when it holds a character outside 0-9A-Za-z. */
export function decodeBase62(s: string): number {
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const d = c < 128 ? B62[c] : -1;
    if (d < 0) return Number.NaN;
    v = v * 62 + d;
  }
  return v;
}

export function encodeBase62(v: number, width: number): string {
  let s = '';
  let n = Math.floor(v);
  for (let i = 0; i < width; i++) {
    s = BASE62[n % 62] + s;
    n = Math.floor(n / 62);
  }
  return s;
}

/** True for a syntactically valid id of either format. */
export function isMessageId(id: string): boolean {
  if (id.length === OLD_ID_LENGTH) {
    return (
      id[6] === '-' && id[13] === '-' && allBase62(id, 0, 6) && allBase62(id, 7, 13) && allBase62(id, 14, 16)
    );
  }
  if (id.length === NEW_ID_LENGTH) {
    return (
      id[6] === '-' && id[18] === '-' && allBase62(id, 0, 6) && allBase62(id, 7, 18) && allBase62(id, 19, 23)
    );
  }
  return false;
}

function allBase62(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || B62[c] < 0) return false;
  }
  return true;
}

/** Arrival time (epoch seconds) encoded in the id's first six characters, or NaN. */
export function idArrivalTime(id: string): number {
  if (id.length < 6) return Number.NaN;
  return decodeBase62(id.slice(0, 6));
}

/** Split-spool subdirectory of an id: its 6th character. */
export function splitDirOf(id: string): string {
  return id[5];
}

export type SpoolFileKind = 'H' | 'D' | 'J';

/**
 * Classifies a name found in input/ (or a split directory) the way Exim's
 * `-bpc` does: a name of 18 or 25 characters ending in `-H` is a queued
 * message, whatever the characters before. `-D` and `-J` of the same lengths
 * are data files and delivery journals. Returns null for anything else.
 */
export function classifySpoolName(name: string): { id: string; kind: SpoolFileKind } | null {
  const len = name.length;
  if ((len !== OLD_ID_LENGTH + 2 && len !== NEW_ID_LENGTH + 2) || name.charCodeAt(len - 2) !== 45 /* - */) {
    return null;
  }
  const k = name[len - 1];
  if (k !== 'H' && k !== 'D' && k !== 'J') return null;
  return { id: name.slice(0, len - 2), kind: k };
}

/** Makes a plausible id for tests, demos and benchmarks. */
export function makeMessageId(arrival: number, seq: number, format: 'old' | 'new' = 'old'): string {
  const t = encodeBase62(arrival, 6);
  if (format === 'old') return `${t}-${encodeBase62(seq, 6)}-${encodeBase62(seq * 7 + 3, 2)}`;
  return `${t}-${encodeBase62(seq, 11)}-${encodeBase62(seq * 7 + 3, 4)}`;
}
