// Filesystem figures of a spool: one statfs(2) system call.
import { statfsSync } from 'node:fs';

export const TMPFS_MAGIC = 0x01021994;
const NAMES: Record<number, string> = {
  [TMPFS_MAGIC]: 'tmpfs',
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  2035054128: 'overlay',
  26985: 'nfs',
  801189825: 'zfs',
  2240043254: 'ramfs',
  1702057286: 'fuse',
};

export interface FsFigures {
  fstype: string;
  typeMagic: number;
  sizeBytes: number;
  availBytes: number;
  freeBytes: number;
  files: number;
  filesFree: number;
}

export function fsTypeName(magic: number): string {
  return NAMES[magic] ?? `0x${magic.toString(16)}`;
}

export function readStatfs(path: string): FsFigures {
  const s = statfsSync(path);
  return {
    fstype: fsTypeName(s.type),
    typeMagic: s.type,
    sizeBytes: s.blocks * s.bsize,
    availBytes: s.bavail * s.bsize,
    freeBytes: s.bfree * s.bsize,
    files: s.files,
    filesFree: s.ffree,
  };
}

export function usedBytes(f: FsFigures): number {
  return f.sizeBytes - f.freeBytes;
}
export function usedInodes(f: FsFigures): number {
  return f.files - f.filesFree;
}
/** Used ratio of bytes, or null for an unlimited filesystem. */
export function usedBytesRatio(f: FsFigures): number | null {
  return f.sizeBytes > 0 ? 1 - f.availBytes / f.sizeBytes : null;
}
export function usedInodesRatio(f: FsFigures): number | null {
  return f.files > 0 ? 1 - f.filesFree / f.files : null;
}
