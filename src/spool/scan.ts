// The full scan of an Exim spool's input/ directory, in two passes:
//  1. listing: input/ and every one-character subdirectory (Exim looks in both,
//     whatever split_spool_directory says): names and entry types only;
//  2. details: st_size of every -H/-D/-J file and the frozen flag of every -H,
//     with a cache keyed by inode and mtime, so a rescan re-reads only headers
//     that Exim has renamed into place since.
// It runs in a worker thread (scan-worker.ts); results are posted in chunks.
import { type Dirent, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { classifySpoolName } from './exim-id.js';
import { readHeaderSync } from './read-header.js';

export const T_FILE = 0;
export const T_DIR = 1;
export const T_OTHER = 2; // symlink, FIFO, socket, device

export interface ListChunk {
  sub: string;
  names: string[];
  types: Uint8Array;
}
export interface DetailChunk {
  sub: string;
  names: string[];
  /** st_size, or -1 when the file vanished */
  sizes: Float64Array;
  /** 1 frozen, 0 not, 2 unreadable/garbage header (H only) */
  frozen: Uint8Array;
}
export interface ScanStats {
  listMs: number;
  detailMs: number;
  dirs: number;
  names: number;
  headersRead: number;
  errors: string[];
}

const CHUNK = 8192;

function typeOf(d: Dirent): number {
  if (d.isFile()) return T_FILE;
  if (d.isDirectory()) return T_DIR;
  return T_OTHER;
}

export function isSplitDirName(name: string): boolean {
  return name.length === 1;
}

interface CacheEntry {
  ino: number;
  mtimeMs: number;
  size: number;
  frozen: number;
}

export class Scanner {
  private headerCache = new Map<string, CacheEntry>();

  constructor(private readonly spool: string) {}

  /** Pass 1. Calls `onChunk` for every up-to-8192 names; returns the directories listed. */
  list(onChunk: (c: ListChunk) => void, errors: string[]): { subs: string[]; names: number } {
    const input = join(this.spool, 'input');
    const root = readdirSync(input, { withFileTypes: true }); // throws when input/ is unreadable
    const subs: string[] = [''];
    let total = 0;
    const emit = (sub: string, ents: Dirent[]) => {
      for (let i = 0; i < ents.length; i += CHUNK) {
        const part = ents.slice(i, i + CHUNK);
        onChunk({ sub, names: part.map((d) => d.name), types: Uint8Array.from(part, typeOf) });
      }
      total += ents.length;
      if (ents.length === 0) onChunk({ sub, names: [], types: new Uint8Array(0) });
    };
    emit('', root);
    for (const d of root) {
      if (!d.isDirectory() || !isSplitDirName(d.name)) continue;
      subs.push(d.name);
      try {
        emit(d.name, readdirSync(join(input, d.name), { withFileTypes: true }));
      } catch (e) {
        errors.push(`input/${d.name}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
    }
    return { subs, names: total };
  }

  /** Pass 2 over the names pass 1 found. */
  details(listed: ListChunk[], onChunk: (c: DetailChunk) => void, errors: string[]): number {
    const input = join(this.spool, 'input');
    let headersRead = 0;
    const seen = new Set<string>();
    for (const lc of listed) {
      const dir = lc.sub ? join(input, lc.sub) : input;
      const names: string[] = [];
      const sizes: number[] = [];
      const frozen: number[] = [];
      for (let i = 0; i < lc.names.length; i++) {
        if (lc.types[i] !== T_FILE) continue;
        const name = lc.names[i];
        const c = classifySpoolName(name);
        if (!c) continue;
        const path = join(dir, name);
        const key = `${lc.sub}/${name}`;
        let size = -1;
        let fz = 0;
        if (c.kind === 'H') {
          seen.add(key);
          try {
            const st = lstatSync(path);
            const hit = this.headerCache.get(key);
            if (hit && hit.ino === st.ino && hit.mtimeMs === st.mtimeMs && hit.size === st.size) {
              size = hit.size;
              fz = hit.frozen;
            } else {
              const r = readHeaderSync(path);
              headersRead++;
              if (r.ok) {
                size = r.size;
                fz = r.info.frozen ? 1 : 0;
              } else if (!r.missing) {
                size = r.size ?? st.size;
                fz = 2;
              }
              if (size >= 0 && r.ino !== undefined) {
                this.headerCache.set(key, { ino: r.ino, mtimeMs: r.mtimeMs ?? 0, size, frozen: fz });
              }
            }
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code !== 'ENOENT') errors.push(`${key}: ${code ?? e}`);
          }
        } else {
          try {
            size = lstatSync(path).size;
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code !== 'ENOENT') errors.push(`${key}: ${code ?? e}`);
          }
        }
        names.push(name);
        sizes.push(size);
        frozen.push(fz);
        if (names.length >= CHUNK) {
          onChunk({
            sub: lc.sub,
            names: names.splice(0),
            sizes: Float64Array.from(sizes.splice(0)),
            frozen: Uint8Array.from(frozen.splice(0)),
          });
        }
      }
      if (names.length)
        onChunk({ sub: lc.sub, names, sizes: Float64Array.from(sizes), frozen: Uint8Array.from(frozen) });
    }
    for (const k of this.headerCache.keys()) if (!seen.has(k)) this.headerCache.delete(k);
    return headersRead;
  }
}
