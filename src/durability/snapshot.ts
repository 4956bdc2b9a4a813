// A content snapshot of a spool's message files (input/ and msglog/, not db/ or
// hdr.* temporaries): used by the tests and the benchmark to prove round trips.
import { closeSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { hashFd, openRegular, readdirOrEmpty } from './fsutil.js';

export interface FileFacts {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** microseconds: what fs.futimes can set */
  mtimeUs: bigint;
  sha256: string;
}

export function snapshotSpool(spool: string, opts: { includeTemps?: boolean } = {}): Map<string, FileFacts> {
  const out = new Map<string, FileFacts>();
  const walk = (rel: string) => {
    for (const name of readdirOrEmpty(join(spool, rel)).sort()) {
      const r = `${rel}/${name}`;
      const st = lstatSync(join(spool, r), { bigint: true });
      if (st.isDirectory()) {
        walk(r);
        continue;
      }
      if (!opts.includeTemps && name.startsWith('hdr.')) continue;
      const { fd } = openRegular(join(spool, r));
      try {
        out.set(r, {
          size: Number(st.size),
          mode: Number(st.mode) & 0o7777,
          uid: Number(st.uid),
          gid: Number(st.gid),
          mtimeUs: st.mtimeNs / 1000n,
          sha256: hashFd(fd).sha256,
        });
      } finally {
        closeSync(fd);
      }
    }
  };
  walk('input');
  walk('msglog');
  return out;
}

/** Human-readable differences between two snapshots (empty when equal). */
export function diffSnapshots(a: Map<string, FileFacts>, b: Map<string, FileFacts>, max = 10): string[] {
  const out: string[] = [];
  for (const [p, fa] of a) {
    const fb = b.get(p);
    if (!fb) out.push(`missing ${p}`);
    else {
      for (const k of ['size', 'mode', 'uid', 'gid', 'mtimeUs', 'sha256'] as const) {
        if (fa[k] !== fb[k]) out.push(`${p}: ${k} ${String(fa[k])} != ${String(fb[k])}`);
      }
    }
    if (out.length >= max) return out;
  }
  for (const p of b.keys()) {
    if (!a.has(p)) out.push(`extra ${p}`);
    if (out.length >= max) break;
  }
  return out;
}
