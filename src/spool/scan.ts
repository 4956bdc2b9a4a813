// The full scan of an Exim spool's input/ directory, in two passes:
//  1. listing: input/ and every one-character subdirectory (Exim looks in both,
//     whatever split_spool_directory says): names and entry types only;
//  2. details: st_size of every -H/-D/-J file and the frozen flag of every -H,
//     with a cache keyed by inode and mtime, so a rescan re-reads only headers
//     that Exim has renamed into place since.
// It runs in a worker thread (scan-worker.ts); results are posted in chunks.
import { type Dirent, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { classifySpoolName, idArrivalTime } from './exim-id.js';
import { readHeaderSync } from './read-header.js';

export const T_FILE = 0;
export const T_DIR = 1;
export const T_OTHER = 2; // symlink, FIFO, socket, device

export interface ListChunk {
  sub: string;
  names: string[];
  /** entry types; null when not read (every entry taken as a file) */
  types: Uint8Array | null;
}
/** One directory's messages as the listing found them, grouped by id. */
export interface MessageChunk {
  sub: string;
  ids: string[];
  /** bit 1: -H present, 2: -D, 4: -J; 8: the -H is not a regular file */
  flags: Uint8Array;
  /** arrival time decoded from the id (NaN when the id is not valid base 62) */
  arrivals: Float64Array;
  /** names that are not message files, and their entry types */
  others: string[];
  otherTypes: Uint8Array;
}

export const F_H = 1;
export const F_D = 2;
export const F_J = 4;
export const F_H_ODD = 8;

export function groupMessages(
  sub: string,
  names: string[],
  types: Uint8Array | null,
  onChunk: (c: MessageChunk) => void,
): void {
  const index = new Map<string, number>();
  const ids: string[] = [];
  const flags: number[] = [];
  const others: string[] = [];
  const otherTypes: number[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const len = name.length;
    const type = types ? types[i] : T_FILE;
    // classifySpoolName, inlined: 18 or 25 characters ending in -H, -D or -J
    const k = name.charCodeAt(len - 1);
    if (
      type === T_DIR ||
      (len !== 18 && len !== 25) ||
      name.charCodeAt(len - 2) !== 45 ||
      (k !== 72 /* H */ && k !== 68 /* D */ && k !== 74) /* J */
    ) {
      others.push(name);
      otherTypes.push(type);
      continue;
    }
    const id = name.slice(0, len - 2);
    const bit = k === 72 ? (type === T_FILE ? F_H : F_H | F_H_ODD) : k === 68 ? F_D : F_J;
    const at = index.get(id);
    if (at === undefined) {
      index.set(id, ids.length);
      ids.push(id);
      flags.push(bit);
    } else flags[at] |= bit;
  }
  let first = true;
  for (let i = 0; i < ids.length || first; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK);
    onChunk({
      sub,
      ids: part,
      flags: Uint8Array.from(flags.slice(i, i + CHUNK)),
      arrivals: Float64Array.from(part, idArrivalTime),
      others: first ? others : [],
      otherTypes: first ? Uint8Array.from(otherTypes) : new Uint8Array(0),
    });
    first = false;
  }
}

export interface DetailChunk {
  sub: string;
  names: string[];
  /** st_size, or -1 when the file vanished */
  sizes: Float64Array;
  /** 1 frozen, 0 not, 2 unreadable/garbage header (H only, when headers were read) */
  frozen: Uint8Array;
  inos: Float64Array;
  mtimes: Float64Array;
}
export interface ScanStats {
  listMs: number;
  detailMs: number;
  dirs: number;
  names: number;
  headersRead: number;
  errors: string[];
}

/** Ids (listing) or names (details) per chunk: small enough that the main thread applies one in about a millisecond. */
const CHUNK = 2048;

function typeOf(d: Dirent): number {
  if (d.isFile()) return T_FILE;
  if (d.isDirectory()) return T_DIR;
  return T_OTHER;
}

export function isSplitDirName(name: string): boolean {
  return name.length === 1;
}

/**
 * A stateless scanner of one part of the spool: part `part` of `parts` lists
 * input/ itself (only part 0 reports its messages) and every `parts`-th split
 * directory, so two workers share the work on two cores.
 */
export class Scanner {
  constructor(
    private readonly spool: string,
    private readonly part = 0,
    private readonly parts = 1,
  ) {}

  /**
   * Pass 1. Lists this part's directories; calls `onChunk` with the messages of
   * each directory grouped by id (up to 8,192 ids a chunk, so the main thread
   * applies them in short slices) and the other names; returns the raw listing
   * for pass 2.
   */
  list(
    onChunk: (c: MessageChunk) => void,
    errors: string[],
  ): { raw: ListChunk[]; subs: string[]; names: number } {
    const input = join(this.spool, 'input');
    const root = readdirSync(input, { withFileTypes: true }); // throws when input/ is unreadable
    const subs: string[] = [];
    const raw: ListChunk[] = [];
    let total = 0;
    const emit = (sub: string, names: string[], types: Uint8Array | null) => {
      total += names.length;
      raw.push({ sub, names, types });
      groupMessages(sub, names, types, onChunk);
    };
    if (this.part === 0) {
      subs.push('');
      emit(
        '',
        root.map((d) => d.name),
        Uint8Array.from(root, typeOf),
      );
    }
    const splits = root
      .filter((d) => d.isDirectory() && isSplitDirName(d.name))
      .map((d) => d.name)
      .sort();
    for (let i = this.part; i < splits.length; i += this.parts) {
      const name = splits[i];
      subs.push(name);
      try {
        // names only: entry types inside split directories matter only for -H files, and pass 2
        // opens those with O_NOFOLLOW|O_NONBLOCK and checks them anyway
        emit(name, readdirSync(join(input, name)), null);
      } catch (e) {
        errors.push(`input/${name}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
    }
    return { raw, subs, names: total };
  }

  /**
   * Pass 2 over the names pass 1 found: sizes, and for -H files their inode and
   * mtime (a rescan compares those: Exim renames a new -H into place at every
   * rewrite) and, when `readHeaders`, the frozen flag.
   */
  details(
    listed: ListChunk[],
    readHeaders: boolean,
    onChunk: (c: DetailChunk) => void,
    errors: string[],
  ): number {
    const input = join(this.spool, 'input');
    let headersRead = 0;
    for (const lc of listed) {
      const dir = lc.sub ? `${input}/${lc.sub}` : input;
      let names: string[] = [];
      let sizes: number[] = [];
      let frozen: number[] = [];
      let inos: number[] = [];
      let mtimes: number[] = [];
      const flush = () => {
        if (!names.length) return;
        onChunk({
          sub: lc.sub,
          names,
          sizes: Float64Array.from(sizes),
          frozen: Uint8Array.from(frozen),
          inos: Float64Array.from(inos),
          mtimes: Float64Array.from(mtimes),
        });
        names = [];
        sizes = [];
        frozen = [];
        inos = [];
        mtimes = [];
      };
      for (let i = 0; i < lc.names.length; i++) {
        if (lc.types && lc.types[i] !== T_FILE) continue;
        const name = lc.names[i];
        const c = classifySpoolName(name);
        if (!c) continue;
        const path = `${dir}/${name}`;
        let size = -1;
        let fz = 0;
        let ino = 0;
        let mtime = 0;
        try {
          if (c.kind === 'H' && readHeaders) {
            const r = readHeaderSync(path, true);
            headersRead++;
            if (r.ok) {
              size = r.size;
              fz = r.info.frozen ? 1 : 0;
            } else if (!r.missing) {
              size = r.size ?? lstatSync(path).size;
              fz = 2;
            }
            ino = r.ino ?? 0;
            mtime = r.mtimeMs ?? 0;
          } else {
            // quiet: a file gone since the listing costs no exception
            const st = lstatSync(path, { throwIfNoEntry: false });
            if (st) {
              size = st.size;
              ino = st.ino;
              mtime = st.mtimeMs;
            }
          }
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT') errors.push(`${lc.sub}/${name}: ${code ?? e}`);
        }
        names.push(name);
        sizes.push(size);
        frozen.push(fz);
        inos.push(ino);
        mtimes.push(mtime);
        if (names.length >= CHUNK) flush();
      }
      flush();
    }
    return headersRead;
  }
}
