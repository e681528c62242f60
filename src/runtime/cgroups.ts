import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A container's cgroups on the host, for the one job nothing else can do: end every
 * process of a container whose runtime state or monitor is gone or half made. runc kills
 * through its state; a `runc create` that was killed halfway, or an init whose monitor
 * died, may have none, but its processes are still in the cgroup runc put them in.
 */

const CGROUP_FS = '/sys/fs/cgroup';

/** The cgroup directories of `cgroupsPath` on this host (v1: one per hierarchy; v2: one). */
export function cgroupDirs(cgroupsPath: string): string[] {
  const rel = cgroupsPath.replace(/^\/+/, '');
  if (fs.existsSync(path.join(CGROUP_FS, 'cgroup.controllers'))) return [path.join(CGROUP_FS, rel)];
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(CGROUP_FS, { withFileTypes: true });
  } catch {
    return [];
  }
  return names.filter((d) => d.isDirectory()).map((d) => path.join(CGROUP_FS, d.name, rel));
}

/** Every pid in the cgroup (and its children), over all hierarchies. */
export function cgroupPids(cgroupsPath: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8');
    } catch {
      return; // not there, or not a cgroup
    }
    for (const l of text.split('\n')) if (/^\d+$/.test(l)) pids.add(Number(l));
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  for (const d of cgroupDirs(cgroupsPath)) walk(d);
  return [...pids];
}

/**
 * SIGKILL every process in the cgroup and wait (up to `ms`) until none is left. A frozen
 * (paused) cgroup is thawed first: a frozen task cannot die. Uses cgroup.kill where the
 * kernel has it (v2, 5.14+), else kills pid by pid until the cgroup stays empty (a fork
 * racing the kill is caught on the next round). Resolves with the pids still there (none
 * when it worked).
 */
export async function killCgroup(cgroupsPath: string, ms = 10_000): Promise<number[]> {
  for (const d of cgroupDirs(cgroupsPath)) {
    if (fs.existsSync(path.join(d, 'freezer.state'))) await fs.promises.writeFile(path.join(d, 'freezer.state'), 'THAWED').catch(() => undefined);
    if (fs.existsSync(path.join(d, 'cgroup.freeze'))) await fs.promises.writeFile(path.join(d, 'cgroup.freeze'), '0').catch(() => undefined);
    if (fs.existsSync(path.join(d, 'cgroup.kill'))) await fs.promises.writeFile(path.join(d, 'cgroup.kill'), '1').catch(() => undefined);
  }
  const deadline = Date.now() + ms;
  for (;;) {
    const left = cgroupPids(cgroupsPath);
    if (left.length === 0 || Date.now() > deadline) return left;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
