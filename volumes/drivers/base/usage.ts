/**
 * Disk usage of a tree, like `du -s --block-size=1` plus an inode count: allocated blocks,
 * each inode once (hardlinks are not counted twice), never following symlinks and never
 * crossing into another filesystem. Synchronous calls in a loop that yields to the event
 * loop every few milliseconds (the same trade as archive/pack.ts: a thread-pool hop per
 * lstat is several times slower).
 */
import * as fs from 'node:fs';
import type { VolumeUsage } from '../driver';

export async function treeUsage(root: string): Promise<VolumeUsage> {
  const top = fs.lstatSync(root);
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  let lastYield = Date.now();
  const count = (st: fs.Stats) => {
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && !st.isDirectory()) {
      if (seen.has(key)) return;
      seen.add(key);
    }
    size += st.blocks * 512;
    inodes++;
  };
  count(top);
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while we walked
      throw e;
    }
    for (const n of names) {
      const p = dir + '/' + n;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory() && st.dev !== top.dev) continue; // a mount or nested btrfs subvolume: not ours to count
      count(st);
      if (st.isDirectory()) stack.push(p);
    }
    if (Date.now() - lastYield > 5) {
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
  }
  return { size, inodes };
}
