// Benchmark of save and restore against `cp -a` + `sync` of the same spool, same run.
//   node --import tsx bench/durability.ts [messages] [runs]
// A split spool on a tmpfs, backups on disk under /var/tmp. Save and restore run
// as child processes (node dist/durability/main.js, built first when missing)
// under /usr/bin/time, which gives their peak RSS.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSpoolDirs, writeMessage } from '../src/spool/fixture.js';

export interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mainJs = join(root, 'dist', 'durability', 'main.js');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs argv under /usr/bin/time; wall seconds and peak RSS in MB. */
function timed(argv: string[]): { seconds: number; rssMb: number; status: number | null; stderr: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'SGRSS %M', ...argv], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const m = /SGRSS (\d+)/.exec(r.stderr ?? '');
  return { seconds, rssMb: m ? Number(m[1]) / 1024 : Number.NaN, status: r.status, stderr: r.stderr };
}

function shell(cmd: string): number {
  const t0 = process.hrtime.bigint();
  execFileSync('sh', ['-c', cmd], { stdio: 'inherit' });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
}

export async function benchDurability(opts: { messages: number; runs: number }): Promise<Row[]> {
  if (!existsSync(mainJs)) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  const n = opts.messages;
  const base = mkdtempSync('/var/tmp/sg-bench-dur-');
  const spool = join(base, 'spool');
  const restoreSpool = join(base, 'restored');
  const disk = join(base, 'disk');
  mkdirSync(disk);
  const bytesPerMsg = 3 * 4096 + 4096;
  const size = `${Math.ceil((n * bytesPerMsg) / (1 << 20)) + 256}m`;
  mountTmpfs(spool, size);
  mountTmpfs(restoreSpool, size);
  try {
    ensureSpoolDirs(spool);
    const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      writeMessage(spool, {
        split: true,
        format: i % 4 === 0 ? 'new' : 'old',
        journal: i % 10 === 0,
        frozen: i % 50 === 0,
        msglog: true,
        bodyBytes: 500 + ((i * 7919) % 6000),
      });
    }
    process.stderr.write(
      `bench durability: made ${n} messages in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
    const cpSave: number[] = [];
    const save: number[] = [];
    const cpRestore: number[] = [];
    const restore: number[] = [];
    let saveRss = 0;
    let restoreRss = 0;
    for (let run = 0; run < opts.runs; run++) {
      // baseline: cp -a + sync, tmpfs -> disk
      const cpDir = join(disk, 'cp');
      cpSave.push(shell(`cp -a ${spool} ${cpDir} && sync`));
      rmSync(cpDir, { recursive: true, force: true });
      shell('sync');
      const to = join(disk, 'backup');
      rmSync(to, { recursive: true, force: true });
      const s = timed([process.execPath, mainJs, 'save', '--spool', spool, '--to', to, '--quiet']);
      if (s.status !== 0) throw new Error(`save failed: ${s.stderr}`);
      save.push(s.seconds);
      saveRss = Math.max(saveRss, s.rssMb);
      const gen = readdirSync(to).find((x) => x.startsWith('gen-'))!;
      // baseline: cp -a + sync of the saved generation back onto a tmpfs
      for (const x of readdirSync(restoreSpool))
        rmSync(join(restoreSpool, x), { recursive: true, force: true });
      cpRestore.push(shell(`cp -a ${join(to, gen)}/. ${restoreSpool}/ && sync`));
      for (const x of readdirSync(restoreSpool))
        rmSync(join(restoreSpool, x), { recursive: true, force: true });
      const r = timed([
        process.execPath,
        mainJs,
        'restore',
        '--from',
        to,
        '--spool',
        restoreSpool,
        '--quiet',
      ]);
      if (r.status !== 0) throw new Error(`restore failed: ${r.stderr}`);
      restore.push(r.seconds);
      restoreRss = Math.max(restoreRss, r.rssMb);
      for (const x of readdirSync(restoreSpool))
        rmSync(join(restoreSpool, x), { recursive: true, force: true });
      rmSync(to, { recursive: true, force: true });
    }
    // the durability strategy: fsync per file vs one syncfs + directory fsyncs (smaller spool: per-file fsync is slow)
    const m = Math.min(n, 10_000);
    const small = join(base, 'small');
    mkdirSync(small);
    ensureSpoolDirs(small);
    for (let i = 0; i < m; i++) writeMessage(small, { split: true, msglog: true, journal: i % 10 === 0 });
    const modes: Record<string, number[]> = { fsync: [], syncfs: [] };
    for (let run = 0; run < Math.max(1, opts.runs); run++) {
      for (const mode of ['fsync', 'syncfs']) {
        const to = join(disk, `mode-${mode}`);
        shell('sync');
        const r = timed([
          process.execPath,
          mainJs,
          'save',
          '--spool',
          small,
          '--to',
          to,
          '--quiet',
          '--sync',
          mode,
        ]);
        if (r.status !== 0) throw new Error(`save --sync ${mode} failed: ${r.stderr}`);
        modes[mode].push(r.seconds);
        rmSync(to, { recursive: true, force: true });
      }
    }
    const f = (x: number) => `${x.toFixed(2)} s`;
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    const rows: Row[] = [
      {
        figure: `save ${n} messages, tmpfs -> disk (hash + durable)`,
        value: f(median(save)),
        baseline: `${f(median(cpSave))} cp -a + sync`,
        ratio: ratio(median(save), median(cpSave)),
      },
      {
        figure: `restore ${n} messages, disk -> tmpfs (verified)`,
        value: f(median(restore)),
        baseline: `${f(median(cpRestore))} cp -a + sync`,
        ratio: ratio(median(restore), median(cpRestore)),
      },
      {
        figure: 'peak RSS, save',
        value: `${saveRss.toFixed(0)} MB`,
        baseline: '200 MB',
        ratio: ratio(saveRss, 200),
      },
      {
        figure: 'peak RSS, restore',
        value: `${restoreRss.toFixed(0)} MB`,
        baseline: '200 MB',
        ratio: ratio(restoreRss, 200),
      },
      {
        figure: `save ${m} messages: one syncfs + dir fsyncs vs fsync per file`,
        value: f(median(modes.syncfs)),
        baseline: `${f(median(modes.fsync))} fsync per file`,
        ratio: ratio(median(modes.syncfs), median(modes.fsync)),
      },
    ];
    return rows;
  } finally {
    for (const d of [spool, restoreSpool]) {
      try {
        execFileSync('umount', ['-l', d]);
      } catch {}
    }
    rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const messages = Number(process.argv[2] ?? 100_000);
  const runs = Number(process.argv[3] ?? 3);
  const rows = await benchDurability({ messages, runs });
  console.log('| figure | value | baseline | ratio |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.figure} | ${r.value} | ${r.baseline} | ${r.ratio} |`);
}
