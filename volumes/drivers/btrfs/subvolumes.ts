/**
 * The btrfs operations the driver needs, each one `btrfs` command: subvolumes (create,
 * snapshot, delete) and qgroup limits. A subvolume's root directory is the one with inode
 * number 256 (BTRFS_FIRST_FREE_OBJECTID), which is how we tell one from a plain directory
 * without a tool.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tool, ToolError } from '../../shared/host-tool';

const SUBVOLUME_ROOT_INO = 256;

export function isSubvolume(st: fs.Stats): boolean {
  return st.isDirectory() && st.ino === SUBVOLUME_ROOT_INO;
}

export async function createSubvolume(dest: string): Promise<void> {
  await tool('btrfs', ['subvolume', 'create', dest]);
}

/** O(1): a snapshot shares every block with its source until one of them is written. */
export async function snapshotSubvolume(src: string, dest: string, readonly: boolean): Promise<void> {
  await tool('btrfs', ['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), src, dest]);
}

/**
 * Delete subvolume `p`, and first any subvolume nested in it (a container may create
 * subvolumes inside a volume; btrfs refuses to delete a subvolume that holds one). The
 * common case is one command; only a refusal walks the tree. Works on a full filesystem.
 */
export async function deleteSubvolume(p: string): Promise<void> {
  try {
    await tool('btrfs', ['subvolume', 'delete', p]);
  } catch (e) {
    if (!(e instanceof ToolError) || !/not empty/i.test(e.stderr)) throw e;
    for (const nested of nestedSubvolumes(p)) await deleteSubvolume(nested);
    await tool('btrfs', ['subvolume', 'delete', p]);
  }
}

/** Subvolumes directly nested in subvolume `root` (not descending into them). */
function nestedSubvolumes(root: string): string[] {
  const found: string[] = [];
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (isSubvolume(fs.lstatSync(p))) found.push(p);
      else stack.push(p);
    }
  }
  return found;
}

/** Turn on qgroups for the filesystem holding `dir` (idempotent). */
export async function enableQuota(dir: string): Promise<void> {
  await tool('btrfs', ['quota', 'enable', dir]);
}

/** Limit the bytes subvolume `dir` may reference. */
export async function limitSubvolume(dir: string, bytes: number): Promise<void> {
  await tool('btrfs', ['qgroup', 'limit', String(bytes), dir]);
}
