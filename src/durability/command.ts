// `spool-guard save` and `spool-guard restore`: argument parsing, output, exit status.
// Exit status: 0 done; 1 anything skipped, refused or failed (with a summary); 2 usage.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatBytes } from './progress.js';
import { type RestoreResult, restore } from './restore.js';
import { type SaveResult, type SyncMode, save } from './save.js';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
};

const MAX_LISTED = 50;

function usageError(io: Io, cmd: string, msg: string): number {
  io.err(`spool-guard ${cmd}: ${msg}`);
  return 2;
}

type Parsed = { values: Record<string, string | boolean | undefined> } | { error: string };

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): Parsed {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return { values: values as Record<string, string | boolean | undefined> };
  } catch (e) {
    // parseArgs messages name the flag, e.g. "Unknown option '--x'" or "Option '--spool <value>' argument missing"
    return { error: (e as Error).message.split('\n')[0] };
  }
}

function listProblems(io: Io, lines: string[]): void {
  for (const l of lines.slice(0, MAX_LISTED)) io.err(l);
  if (lines.length > MAX_LISTED) io.err(`... and ${lines.length - MAX_LISTED} more`);
}

function ignoredSummary(ignored: { reason: string }[]): string {
  const by = new Map<string, number>();
  for (const i of ignored) by.set(i.reason, (by.get(i.reason) ?? 0) + 1);
  return [...by].map(([r, n]) => `${n} ${r}`).join(', ');
}

export async function runSave(argv: string[], io: Io = defaultIo): Promise<number> {
  const p = parse(argv, {
    spool: { type: 'string' },
    to: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
    keep: { type: 'string' },
    sync: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  if ('error' in p) return usageError(io, 'save', p.error);
  const v = p.values;
  if (typeof v.spool !== 'string' || v.spool === '') return usageError(io, 'save', '--spool DIR is required');
  if (typeof v.to !== 'string' || v.to === '') return usageError(io, 'save', '--to DIR is required');
  let keep = 1;
  if (v.keep !== undefined) {
    keep = Number(v.keep);
    if (!/^\d+$/.test(String(v.keep))) {
      return usageError(io, 'save', `--keep: expected a whole number >= 0, got ${JSON.stringify(v.keep)}`);
    }
  }
  if (v.sync !== undefined && v.sync !== 'syncfs' && v.sync !== 'fsync') {
    return usageError(io, 'save', `--sync: expected syncfs or fsync, got ${JSON.stringify(v.sync)}`);
  }
  let r: SaveResult;
  try {
    r = save({
      spool: resolve(v.spool),
      to: resolve(v.to),
      force: v.force === true,
      keep,
      sync: (v.sync as SyncMode | undefined) ?? 'syncfs',
      quiet: v.quiet === true || v.json === true,
    });
  } catch (e) {
    io.err(`spool-guard save: ${(e as Error).message}`);
    return 1;
  }
  if (v.json) {
    io.out(JSON.stringify({ command: 'save', ...r }));
  } else {
    listProblems(io, [
      ...r.problems,
      ...r.warnings,
      ...r.ignored.map((i) => `not copied: ${i.path} (${i.reason})`),
    ]);
    const ign = r.ignored.length > 0 ? `; not copied: ${ignoredSummary(r.ignored)}` : '';
    if (r.ok) {
      io.out(
        `saved ${r.messages} messages (${r.files} files, ${formatBytes(r.bytes)}) to ${r.generation} ` +
          `in ${r.seconds.toFixed(1)} s${ign}${r.retired.length ? `; retired ${r.retired.join(' ')}` : ''}`,
      );
    } else {
      io.out(
        `save FAILED after ${r.seconds.toFixed(1)} s: ${r.problems[0] ?? 'unknown error'}; current generation unchanged`,
      );
    }
  }
  return r.ok ? 0 : 1;
}

export async function runRestore(argv: string[], io: Io = defaultIo): Promise<number> {
  const p = parse(argv, {
    from: { type: 'string' },
    spool: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
    generation: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  if ('error' in p) return usageError(io, 'restore', p.error);
  const v = p.values;
  if (typeof v.from !== 'string' || v.from === '') return usageError(io, 'restore', '--from DIR is required');
  if (typeof v.spool !== 'string' || v.spool === '')
    return usageError(io, 'restore', '--spool DIR is required');
  if (v.generation !== undefined && !/^gen-\d{8}T\d{6}Z$/.test(String(v.generation))) {
    return usageError(
      io,
      'restore',
      `--generation: expected gen-<yyyymmddThhmmssZ>, got ${JSON.stringify(v.generation)}`,
    );
  }
  let r: RestoreResult;
  try {
    r = restore({
      from: resolve(v.from),
      spool: resolve(v.spool),
      force: v.force === true,
      generation: v.generation as string | undefined,
      quiet: v.quiet === true || v.json === true,
    });
  } catch (e) {
    io.err(`spool-guard restore: ${(e as Error).message}`);
    return 1;
  }
  if (v.json) {
    io.out(JSON.stringify({ command: 'restore', ...r }));
    return r.ok ? 0 : 1;
  }
  if (r.alreadyRestored) {
    io.out(
      `${r.generation} was already restored (${r.alreadyRestored}); nothing to do. ` +
        'Use --force to restore it again (messages delivered since would be delivered again).',
    );
    return 0;
  }
  listProblems(io, [...r.problems, ...r.conflicts, ...r.corrupt, ...r.errors]);
  if (r.problems.length > 0 && r.messages === 0) {
    io.out(`restore FAILED: ${r.problems[0]}`);
    return 1;
  }
  const skipped = r.conflicts.length + r.corrupt.length + r.errors.length;
  io.out(
    `restored ${r.restored} of ${r.messages} messages (${r.files} files, ${formatBytes(r.bytes)}) from ${r.generation} ` +
      `in ${r.seconds.toFixed(1)} s; ${r.present} already present` +
      (skipped
        ? `; SKIPPED ${skipped} (${r.conflicts.length} different content kept, ${r.corrupt.length} failed verification, ${r.errors.length} errors)`
        : '') +
      (r.tempsRemoved ? `; removed ${r.tempsRemoved} temporaries of an interrupted run` : '') +
      (r.marked ? '; marked as restored' : '; NOT marked as restored'),
  );
  return r.ok ? 0 : 1;
}
