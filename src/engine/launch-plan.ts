import * as fs from 'node:fs';
import { BerthError, FailedPreconditionError } from '../../volumes/shared/errors';
import { findExecutable, lookupGroups, lookupUser, resolveInRoot, validateWorkdirInRoot } from '../runtime/rootfs';
import { DEFAULT_PATH_ENV, type ContainerSpecInput, type MountInput } from '../runtime/spec';
import type { ExitCodeError } from '../runtime/runtime';
import type { ContainerPaths, ContainerRecord } from './container-record';
import { bindPoints, type MountPoint } from './mounts';
import { checkUlimits, groupAdd, securityInput, tmpfsMounts } from './security-config';

/**
 * What `start` hands buildSpec for one container, worked out against its mounted root
 * filesystem: the user from the image's /etc/passwd, the working directory (made if
 * missing, never under /proc even through a symlink), the command looked up on the
 * container's PATH, the /etc files and binds, and HostConfig's limits.
 */

/** A start failure with the exit status Docker reports for it (127 not found, 126 not executable, 128 other). */
export function exitCodeError(message: string, hint: string, exitCode: number): ExitCodeError {
  const e = new FailedPreconditionError(message, { hint }) as ExitCodeError;
  e.exitCode = exitCode;
  return e;
}

function pathOf(env: string[]): string {
  const p = env.find((e) => e.startsWith('PATH='));
  return (p ?? DEFAULT_PATH_ENV).slice('PATH='.length);
}

/** `extraEnv` (link env vars) first; the container's own Env wins over a name in both. */
export async function planLaunch(rec: ContainerRecord, p: ContainerPaths, cgroupsPath: string, extraEnv: string[] = []): Promise<ContainerSpecInput> {
  const cfg = rec.Config;
  const hc = rec.HostConfig;
  let user;
  try {
    user = await lookupUser(p.rootfs, cfg.User || '');
  } catch (e) {
    const be = e as BerthError;
    throw exitCodeError(`unable to find user ${cfg.User}: ${be.message}`, be.hint ?? 'use a numeric uid:gid', 128);
  }
  const cwd = await validateWorkdirInRoot(p.rootfs, cfg.WorkingDir || '/');
  // Docker makes a missing working directory (root-owned) before the process starts.
  await fs.promises.mkdir(await resolveInRoot(p.rootfs, cwd), { recursive: true, mode: 0o755 });

  const args = [rec.Path, ...rec.Args];
  const own = new Set(cfg.Env.map((e) => e.split('=')[0]));
  const env = [...extraEnv.filter((e) => !own.has(e.split('=')[0])), ...cfg.Env];
  const cmd = args[0];

  const ro = !!hc.ReadonlyRootfs;
  const etc = (source: string, destination: string): MountInput => ({ source, destination, options: ['rbind', 'rprivate', ro ? 'ro' : 'rw'] });
  const mounts: MountInput[] = [etc(p.resolvConf, '/etc/resolv.conf'), etc(p.hostname, '/etc/hostname'), etc(p.hosts, '/etc/hosts')];
  // --tmpfs mounts sort in with the container's own mounts, parents first.
  mounts.push(...[...(await userMounts(rec.Mounts ?? bindPoints(hc.Binds))), ...tmpfsMounts(hc.Tmpfs)].sort((a, b) => depth(a.destination) - depth(b.destination)));
  let extraGids: number[];
  try {
    extraGids = await lookupGroups(p.rootfs, groupAdd(hc));
  } catch (e) {
    const be = e as BerthError;
    throw exitCodeError(be.message, be.hint ?? 'use a numeric gid', 128);
  }

  // A relative path with a '/' depends on the working directory, and a command inside a
  // mount is not in the image: runc tells about those.
  const inMount = cmd.startsWith('/') && mounts.some((m) => cmd.startsWith(m.destination.replace(/\/*$/, '/')));
  if ((!cmd.includes('/') || cmd.startsWith('/')) && !inMount) {
    if (!(await findExecutable(p.rootfs, cmd, pathOf(env)))) {
      throw exitCodeError(
        `exec: "${cmd}": executable file not found in $PATH`,
        'check the command (entrypoint/cmd) and the PATH: it does not exist in the image',
        127,
      );
    }
  }

  let cpus: number | undefined;
  if (hc.NanoCpus) cpus = hc.NanoCpus / 1e9;
  else if (hc.CpuQuota && hc.CpuQuota > 0) cpus = hc.CpuQuota / (hc.CpuPeriod || 100_000);

  return {
    rootfs: p.rootfs,
    args,
    env,
    cwd,
    uid: user.uid,
    gid: user.gid,
    additionalGids: [...new Set([...user.additionalGids, ...extraGids])],
    hostname: cfg.Hostname,
    domainname: cfg.Domainname || undefined,
    readonlyRootfs: ro,
    memoryBytes: hc.Memory || undefined,
    memorySwapBytes: hc.Memory && hc.MemorySwap ? hc.MemorySwap : undefined,
    cpus,
    pidsLimit: hc.PidsLimit && hc.PidsLimit > 0 ? hc.PidsLimit : undefined,
    cgroupsPath,
    mounts,
    init: hc.Init === true,
    shmSizeBytes: hc.ShmSize || undefined,
    rlimits: checkUlimits(hc.Ulimits, undefined),
    security: securityInput(hc),
  };
}

/**
 * The container's own mounts, parents before children (a volume at /data and a bind at
 * /data/cfg must mount in that order). Volumes and binds are rbind mounts of host
 * directories, never copy-on-write. A volume's subpath is resolved beneath the volume
 * without following a symlink out of it.
 */
export async function userMounts(points: MountPoint[]): Promise<MountInput[]> {
  const sorted = [...points].sort((a, b) => depth(a.Destination) - depth(b.Destination));
  const out: MountInput[] = [];
  for (const m of sorted) {
    if (m.Type === 'tmpfs') {
      const opts = ['nosuid', 'nodev', m.RW ? 'rw' : 'ro'];
      if (m.Tmpfs?.SizeBytes) opts.push(`size=${m.Tmpfs.SizeBytes}`);
      if (m.Tmpfs?.Mode) opts.push(`mode=${m.Tmpfs.Mode.toString(8)}`);
      out.push({ type: 'tmpfs', source: 'tmpfs', destination: m.Destination, options: opts });
      continue;
    }
    let source = m.Source;
    if (m.Type === 'bind') {
      await fs.promises.mkdir(source, { recursive: true }).catch(() => undefined); // Docker makes a missing host dir
    } else if (m.Subpath) {
      source = await resolveInRoot(m.Source, m.Subpath);
      const st = await fs.promises.lstat(source).catch(() => undefined);
      if (!st) {
        throw exitCodeError(`volume subpath ${m.Subpath} does not exist in volume ${m.Name}`, 'create the directory in the volume first, or fix the subpath', 128);
      }
    }
    out.push({ source, destination: m.Destination, options: ['rbind', propagation(m), m.RW ? 'rw' : 'ro'] });
  }
  return out;
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

function propagation(m: MountPoint): string {
  return /^r?(private|shared|slave)$/.test(m.Propagation) ? m.Propagation : 'rprivate';
}
