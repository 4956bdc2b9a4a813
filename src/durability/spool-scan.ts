// Finds the messages of an Exim spool the way Exim does: `*-H` files in
// input/ and in its one-character split directories (whatever
// split_spool_directory says), with their `-D`, `-J` and msglog files.
import { constants as C } from 'node:fs';
import { join } from 'node:path';
import { BASE62, classifySpoolName } from '../spool/exim-id.js';
import { lstatOrNull, readdirOrEmpty } from './fsutil.js';

export interface SpoolMessage {
  id: string;
  /** spool-relative paths: -J, -D, -H last (the msglog is found when copying) */
  files: string[];
  /** -H without -D (copied as it is, reported) */
  noData: boolean;
}

export interface Ignored {
  path: string;
  reason: string;
}

export interface SpoolDir {
  path: string;
  mode: number;
  uid: number;
  gid: number;
}

/** Spool-relative directories that hold messages or message logs, parents first. */
export function spoolDirs(spool: string): SpoolDir[] {
  const out: SpoolDir[] = [];
  const add = (rel: string): boolean => {
    const st = lstatOrNull(join(spool, rel));
    if (!st?.isDirectory()) return false;
    out.push({ path: rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
    return true;
  };
  add('.');
  for (const top of ['input', 'msglog']) {
    if (!add(top)) continue;
    for (const name of readdirOrEmpty(join(spool, top)).sort()) {
      if (name.length === 1 && BASE62.includes(name)) add(`${top}/${name}`);
    }
  }
  return out;
}

/** Counts queued messages (-H names) without keeping the names: progress totals. */
export function countQueued(spool: string, dirs: SpoolDir[]): number {
  let n = 0;
  for (const d of dirs) {
    if (d.path !== 'input' && !d.path.startsWith('input/')) continue;
    for (const name of readdirOrEmpty(join(spool, d.path))) {
      if (classifySpoolName(name)?.kind === 'H') n++;
    }
  }
  return n;
}

/**
 * The messages of one input directory (`input` or `input/<c>`). A message is
 * an id with a -H file; its msglog is looked for in the matching msglog
 * directory (split or flat) when it is copied.
 */
export function inputDirMessages(spool: string, dir: string, ignored: Ignored[]): SpoolMessage[] {
  const byId = new Map<string, { H?: string; D?: string; J?: string }>();
  for (const name of readdirOrEmpty(join(spool, dir))) {
    if (dir === 'input' && name.length === 1 && BASE62.includes(name)) continue; // split dir
    const c = classifySpoolName(name);
    if (!c) {
      ignored.push({
        path: `${dir}/${name}`,
        reason: name.startsWith('hdr.') ? 'header temporary' : 'not a spool file',
      });
      continue;
    }
    let m = byId.get(c.id);
    if (!m) {
      m = {};
      byId.set(c.id, m);
    }
    m[c.kind] = `${dir}/${name}`;
  }
  const out: SpoolMessage[] = [];
  for (const [id, m] of byId) {
    if (!m.H) {
      if (m.D) ignored.push({ path: m.D, reason: '-D without -H' });
      if (m.J) ignored.push({ path: m.J, reason: '-J without -H' });
      continue;
    }
    const files: string[] = [];
    if (m.J) files.push(m.J);
    if (m.D) files.push(m.D);
    files.push(m.H);
    out.push({ id, files, noData: !m.D });
  }
  return out;
}

/** Where a message's log may be, most likely first. */
export function msglogCandidates(id: string, inputDir: string): string[] {
  const split = inputDir.length > 'input'.length;
  const sub = split ? inputDir.slice('input/'.length) : id[5];
  const splitPath = `msglog/${sub}/${id}`;
  const flatPath = `msglog/${id}`;
  return split ? [splitPath, flatPath] : [flatPath, splitPath];
}

/** Paths a manifest may name: input/ or msglog/, optionally one split level, one plain name. */
export function safeRelPath(rel: string): boolean {
  return /^(input|msglog)(\/[0-9A-Za-z])?\/[^/\0]+$/.test(rel) && !rel.endsWith('/..') && !rel.endsWith('/.');
}

export const O_NOATIME = (C as Record<string, number>).O_NOATIME ?? 0;
