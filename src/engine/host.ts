import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cgroupDirs } from '../runtime/cgroups';

export { cgroupDirs };

/**
 * What the engine asks the host directly: cgroup paths (one parent per data root, so
 * daemons and tests side by side never share a cgroup) and whether a container's monitor
 * still lives.
 */

/** `/berth-<8 hex of sha256(data root)>`: the cgroup parent of one daemon's containers. */
export function cgroupParent(dataRoot: string): string {
  return `/berth-${createHash('sha256').update(path.resolve(dataRoot)).digest('hex').slice(0, 8)}`;
}

/**
 * Remove a container's cgroup directories if the runtime left any (it normally removes
 * them on delete). rmdir only: a cgroup with processes in it stays, and says so.
 */
export async function removeCgroup(cgroupsPath: string): Promise<void> {
  for (const dir of cgroupDirs(cgroupsPath)) {
    await removeTree(dir).catch(() => undefined);
  }
}

/**
 * Remove the daemon's cgroup parent if no container cgroup is left in it (rmdir of a
 * non-empty cgroup fails, harmlessly): no `/berth-*` cgroup outlives the last container.
 */
export async function removeCgroupParent(parent: string): Promise<void> {
  for (const dir of cgroupDirs(parent)) await fs.promises.rmdir(dir).catch(() => undefined);
}

async function removeTree(dir: string): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch {
    return; // not there
  }
  for (const e of entries) if (e.isDirectory()) await removeTree(path.join(dir, e.name));
  await fs.promises.rmdir(dir);
}

/** Whether `pid` is still the berth-monitor of container `id` (and not a reused pid). */
export async function monitorAlive(pid: number, id: string): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const argv = (await fs.promises.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    const stat = await fs.promises.readFile(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false; // a zombie records nothing
    return path.basename(argv[0] ?? '').startsWith('berth-monitor') && argv.includes(id);
  } catch {
    return false;
  }
}
