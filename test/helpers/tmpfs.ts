// Real RAM disks for tests: mounts a tmpfs of the given size (and inode count) in a fresh temp dir.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  unmount(): void;
  remount(): void;
  dispose(): void;
}

export const isRoot = process.getuid?.() === 0;

export function mountTmpfs(size = '64m', opts: { nrInodes?: number; mode?: string } = {}): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'sg-tmpfs-'));
  const o = [`size=${size}`, `mode=${opts.mode ?? '0755'}`];
  if (opts.nrInodes !== undefined) o.push(`nr_inodes=${opts.nrInodes}`);
  const mount = () => execFileSync('mount', ['-t', 'tmpfs', '-o', o.join(','), 'tmpfs', dir]);
  mount();
  let mounted = true;
  return {
    dir,
    unmount() {
      if (mounted) execFileSync('umount', ['-l', dir]);
      mounted = false;
    },
    remount() {
      if (!mounted) mount();
      mounted = true;
    },
    dispose() {
      try {
        if (mounted) execFileSync('umount', ['-l', dir]);
      } catch {}
      mounted = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
