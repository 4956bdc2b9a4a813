// save/restore: byte-exact round trips, the restored-mark, --force, corruption, a full target.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runRestore, runSave } from '../../src/durability/command.js';
import { readCurrent, walkManifest } from '../../src/durability/manifest.js';
import { diffSnapshots, snapshotSpool } from '../../src/durability/snapshot.js';
import { ensureSpoolDirs, removeMessage, writeMessage } from '../../src/spool/fixture.js';
import { isRoot, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';

const EXIM_UID = 103;
const EXIM_GID = 106;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) } };
}

async function save(args: string[]) {
  const c = capture();
  const code = await runSave([...args, '--quiet'], c.io);
  return { code, ...c };
}
async function restore(args: string[]) {
  const c = capture();
  const code = await runRestore([...args, '--quiet'], c.io);
  return { code, ...c };
}

/** A spool with both layouts and both id formats, journals, frozen messages, message logs, odd owners and modes. */
function makeSpool(spool: string, n: number) {
  ensureSpoolDirs(spool);
  const msgs = [];
  for (let i = 0; i < n; i++) {
    msgs.push(
      writeMessage(spool, {
        split: i % 2 === 0,
        format: i % 3 === 0 ? 'new' : 'old',
        journal: i % 5 === 0,
        frozen: i % 7 === 0,
        msglog: i % 11 !== 0,
        aclValue: i % 13 === 0 ? 'x\n-frozen 1\n'.repeat(50) : undefined,
        bodyBytes: 100 + ((i * 7919) % 5000),
        arrival: 1_700_000_000 + i,
      }),
    );
  }
  // owners and modes as Exim leaves them (and some not), so that keeping them is tested
  for (const [i, m] of msgs.entries()) {
    for (const s of ['-H', '-D']) {
      const p = join(spool, m.dir, m.id + s);
      if (i % 2 === 0) chownSync(p, EXIM_UID, EXIM_GID);
      if (i % 4 === 1) chmodSync(p, 0o600);
    }
  }
  chownSync(join(spool, 'input'), EXIM_UID, EXIM_GID);
  return msgs;
}

describe('save and restore', { skip: !isRoot && 'needs root (tmpfs, chown)' }, () => {
  let spoolFs: Tmpfs;
  let restoreFs: Tmpfs;
  let work: string;
  let spool: string;
  let backup: string;
  let msgs: ReturnType<typeof makeSpool>;

  before(() => {
    spoolFs = mountTmpfs('256m');
    restoreFs = mountTmpfs('256m');
    work = mkdtempSync(join(tmpdir(), 'sg-dur-rt-'));
    spool = spoolFs.dir;
    backup = join(work, 'backup');
    msgs = makeSpool(spool, 3000);
    // not messages: a header temporary, a -D without -H, the hints db
    writeFileSync(join(spool, 'input', 'hdr.12345'), 'partial header');
    writeFileSync(join(spool, 'input', '1zzzzz-000000-00-D'), 'orphan data');
    writeFileSync(join(spool, 'db', 'retry'), 'hints');
  });
  after(() => {
    spoolFs?.dispose();
    restoreFs?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('usage errors exit 2 naming the flag', async () => {
    const a = await save(['--spool', spool]);
    assert.equal(a.code, 2);
    assert.match(a.err.join('\n'), /--to/);
    const b = await save(['--spool', spool, '--to', backup, '--keep', 'x']);
    assert.equal(b.code, 2);
    assert.match(b.err.join('\n'), /--keep/);
    const c = await restore(['--from', backup, '--spool', spool, '--bogus']);
    assert.equal(c.code, 2);
    assert.match(c.err.join('\n'), /--bogus/);
    assert.equal(existsSync(backup), false, 'nothing written on a usage error');
  });

  test('round trip of 3000 messages is byte-exact with owners, modes and mtimes', async () => {
    const before = snapshotSpool(spool);
    const s = await save(['--spool', spool, '--to', backup]);
    assert.equal(s.code, 0, s.err.join('\n'));
    assert.match(s.out[0], /saved 3000 messages/);
    assert.match(s.err.join('\n'), /hdr\.12345 \(header temporary\)/);
    assert.match(s.err.join('\n'), /1zzzzz-000000-00-D \(-D without -H\)/);
    assert.deepEqual(diffSnapshots(before, snapshotSpool(spool)), [], 'spool untouched');
    const gen = readCurrent(backup);
    assert.ok(gen);
    const paths: string[] = [];
    const check = walkManifest(join(backup, gen, 'manifest.json'), (e) => paths.push(e.path));
    assert.ok(check.ok);
    assert.equal(check.trailer.messages, 3000);
    assert.ok(!paths.some((p) => p.includes('hdr.') || p.startsWith('db/') || p.includes('1zzzzz')));
    // the manifest is one JSON document
    const doc = JSON.parse(readFileSync(join(backup, gen, 'manifest.json'), 'utf8'));
    assert.equal(doc.files.length, paths.length);
    assert.ok(doc.files.every((f: Record<string, unknown>) => typeof f.sha256 === 'string' && 'uid' in f));

    const target = restoreFs.dir;
    const r = await restore(['--from', backup, '--spool', target]);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out[0], /restored 3000 of 3000/);
    const got = snapshotSpool(target);
    const want = new Map([...before].filter(([p]) => !p.includes('1zzzzz')));
    assert.deepEqual(diffSnapshots(want, got), []);
    assert.equal(got.size, want.size);
    assert.equal(existsSync(join(target, 'db')), false, 'db/ not restored');
    // Exim's directories with the saved owners and modes
    const { statSync } = await import('node:fs');
    const st = statSync(join(target, 'input'));
    assert.equal(st.uid, EXIM_UID);
    assert.equal(st.mode & 0o777, 0o750);
    assert.ok(statSync(join(target, 'msglog')).isDirectory());
  });

  test('a restored generation is not restored again (crash), unless --force', async () => {
    const target = restoreFs.dir;
    // the relay delivers some messages after boot
    for (const m of msgs.slice(0, 100)) removeMessage(target, m);
    // unplanned crash: no save; the boot restore must leave the generation alone
    const again = await restore(['--from', backup, '--spool', target]);
    assert.equal(again.code, 0);
    assert.match(again.out[0], /already restored/);
    assert.equal(
      existsSync(join(target, msgs[0].dir, msgs[0].id + '-H')),
      false,
      'delivered mail not brought back',
    );
    const forced = await restore(['--from', backup, '--spool', target, '--force']);
    assert.equal(forced.code, 0, forced.err.join('\n'));
    assert.match(forced.out[0], /restored 100 of 3000 .* 2900 already present/);
    assert.equal(existsSync(join(target, msgs[0].dir, msgs[0].id + '-H')), true);
  });

  test('present with different content is kept and reported; exit 1', async () => {
    const target = restoreFs.dir;
    const m = msgs[1];
    const h = join(target, m.dir, m.id + '-H');
    writeFileSync(h, 'rewritten by exim\n');
    const r = await restore(['--from', backup, '--spool', target, '--force']);
    assert.equal(r.code, 1);
    assert.match(r.err.join('\n'), new RegExp(`${m.id}: already in the spool with different content`));
    assert.equal(readFileSync(h, 'utf8'), 'rewritten by exim\n');
    assert.match(r.out[0], /SKIPPED 1 \(1 different content kept/);
  });

  test('a bit flipped in a saved file is caught: that message skipped, the others restored', async () => {
    const gen = readCurrent(backup)!;
    const victim = msgs[2];
    const p = join(backup, gen, victim.dir, victim.id + '-D');
    const buf = readFileSync(p);
    buf[buf.length - 3] ^= 0x04;
    writeFileSync(p, buf);
    const target = join(restoreFs.dir, 'fresh');
    mkdirSync(target);
    const r = await restore(['--from', backup, '--spool', target, '--force']);
    assert.equal(r.code, 1);
    assert.match(r.err.join('\n'), new RegExp(`${victim.id}: .*-D: saved copy does not match the manifest`));
    assert.match(r.out[0], /restored 2999 of 3000/);
    for (const s of ['-H', '-D', '-J'])
      assert.equal(existsSync(join(target, victim.dir, victim.id + s)), false);
    assert.equal(
      readdirSync(join(target, victim.dir)).filter((n) => n.startsWith('.sg-')).length,
      0,
      'no temporaries left',
    );
    rmSync(target, { recursive: true });
  });

  test('a generation without a complete manifest is never restored', async () => {
    const gen = readCurrent(backup)!;
    const mf = join(backup, gen, 'manifest.json');
    const text = readFileSync(mf, 'utf8');
    writeFileSync(mf, text.slice(0, text.lastIndexOf('],')));
    const target = join(restoreFs.dir, 'fresh2');
    mkdirSync(target);
    const r = await restore(['--from', backup, '--spool', target, '--force']);
    assert.equal(r.code, 1);
    assert.match(r.err.join('\n'), /manifest incomplete/);
    assert.deepEqual(readdirSync(target), []);
    writeFileSync(mf, text);
    rmSync(target, { recursive: true });
  });

  test('retires generations beyond --keep and keeps the previous one by default', async () => {
    const b2 = join(work, 'gens');
    const gens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await save(['--spool', spool, '--to', b2]);
      assert.equal(s.code, 0);
      gens.push(readCurrent(b2)!);
    }
    assert.equal(new Set(gens).size, 3, 'distinct, increasing generation names');
    assert.deepEqual([...gens].sort(), gens);
    const left = readdirSync(b2).filter((n) => n.startsWith('gen-'));
    assert.deepEqual(left.sort(), gens.slice(1));
    rmSync(b2, { recursive: true });
  });

  test('a target too small: save fails cleanly, previous generation intact', async () => {
    const small = mountTmpfs('4m');
    try {
      const tiny = join(work, 'tiny-spool');
      ensureSpoolDirs(tiny);
      for (let i = 0; i < 20; i++) writeMessage(tiny, { bodyBytes: 1000 });
      const first = await save(['--spool', tiny, '--to', small.dir]);
      assert.equal(first.code, 0, first.err.join('\n'));
      const gen1 = readCurrent(small.dir)!;
      // now a spool bigger than the target
      for (let i = 0; i < 40; i++) writeMessage(tiny, { bodyBytes: 200_000 });
      const second = await save(['--spool', tiny, '--to', small.dir]);
      assert.equal(second.code, 1);
      assert.match(second.out[0], /save FAILED.*(ENOSPC|no space)/i);
      assert.equal(readCurrent(small.dir), gen1);
      assert.deepEqual(
        readdirSync(small.dir).filter((n) => !n.startsWith('.lock')),
        ['current', gen1].sort(),
        'partial generation removed',
      );
      const target = join(work, 'tiny-restored');
      mkdirSync(target);
      const r = await restore(['--from', small.dir, '--spool', target]);
      assert.equal(r.code, 0, r.err.join('\n'));
      assert.match(r.out[0], /restored 20 of 20/);
    } finally {
      small.dispose();
    }
  });
});
