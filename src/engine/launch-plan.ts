import * as fs from 'node:fs';
import { BerthError, FailedPreconditionError } from '../../volumes/errors';
import { findExecutable, lookupUser, resolveInRoot, validateWorkdirInRoot } from '../runtime/rootfs';
import { DEFAULT_PATH_ENV, type ContainerSpecInput, type MountInput } from '../runtime/spec';
import type { ExitCodeError } from '../runtime/runtime';
import type { ContainerPaths, ContainerRecord } from './container-record';
import { parseBind } from './create-config';

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

export async function planLaunch(rec: ContainerRecord, p: ContainerPaths, cgroupsPath: string): Promise<ContainerSpecInput> {
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
  const env = [...cfg.Env];
  const cmd = args[0];
  // A relative path with a '/' depends on the working directory: runc tells about that one.
  if (!cmd.includes('/') || cmd.startsWith('/')) {
    if (!(await findExecutable(p.rootfs, cmd, pathOf(env)))) {
      throw exitCodeError(
        `exec: "${cmd}": executable file not found in $PATH`,
        'check the command (entrypoint/cmd) and the PATH: it does not exist in the image',
        127,
      );
    }
  }

  const ro = !!hc.ReadonlyRootfs;
  const etc = (source: string, destination: string): MountInput => ({ source, destination, options: ['rbind', 'rprivate', ro ? 'ro' : 'rw'] });
  const mounts: MountInput[] = [etc(p.resolvConf, '/etc/resolv.conf'), etc(p.hostname, '/etc/hostname'), etc(p.hosts, '/etc/hosts')];
  for (const b of hc.Binds ?? []) {
    const bind = parseBind(b);
    await fs.promises.mkdir(bind.source, { recursive: true }).catch(() => undefined); // Docker makes a missing host dir
    mounts.push({ source: bind.source, destination: bind.destination, options: ['rbind', 'rprivate', bind.readonly ? 'ro' : 'rw'] });
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
    additionalGids: user.additionalGids,
    hostname: cfg.Hostname,
    readonlyRootfs: ro,
    memoryBytes: hc.Memory || undefined,
    memorySwapBytes: hc.Memory && hc.MemorySwap ? hc.MemorySwap : undefined,
    cpus,
    pidsLimit: hc.PidsLimit && hc.PidsLimit > 0 ? hc.PidsLimit : undefined,
    cgroupsPath,
    mounts,
    init: hc.Init === true,
    shmSizeBytes: hc.ShmSize || undefined,
  };
}
