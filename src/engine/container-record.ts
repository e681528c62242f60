import * as path from 'node:path';
import type { ContainerState, CreateBody, HostConfig } from './service';
import type { MountPoint } from './mounts';
import type { ContainerNetwork } from '../network/network';

/**
 * One container's record (`<root>/<id>/container.json`) and the files next to it.
 *
 * Directory of a container:
 *   container.json   this record, rewritten atomically on every change
 *   bundle/          the OCI bundle (config.json) of the current or last run
 *   rootfs/          mount point of the root filesystem (snapshot `ctr-<id>`) while it runs
 *   json.log(.N)     output, Docker json-file format, written by berth-monitor
 *   exit.json        the monitor's exit record of the last run
 *   pid              the container's init pid (written by runc)
 *   runtime.log      runc's log
 *   stdin            a fifo, when the container has OpenStdin (and no tty)
 *   console.sock     runc hands berth-monitor the pty master here (tty, during create)
 *   attach.sock      berth-monitor's attach socket for the pty (tty containers)
 *   hostname, hosts, resolv.conf   bind-mounted over /etc/..., as Docker does
 */

/** Docker's container Config as the engine keeps it: the create body merged with the image's. */
export type ContainerConfig = Omit<CreateBody, 'HostConfig' | 'NetworkingConfig'> & {
  Hostname: string;
  Image: string;
  Labels: Record<string, string>;
  Env: string[];
  Cmd: string[] | null;
  Entrypoint: string[] | null;
};

export interface ContainerRecord {
  version: 1;
  Id: string;
  /** '/name', as Docker writes it. */
  Name: string;
  Created: string;
  /** The image id. */
  Image: string;
  Path: string;
  Args: string[];
  Config: ContainerConfig;
  HostConfig: HostConfig;
  State: ContainerState;
  RestartCount: number;
  /** A user stopped or killed it: `unless-stopped` does not bring it back. */
  ManualStop: boolean;
  /** The berth-monitor of the current run, 0 when none. */
  MonitorPid: number;
  /** The OCI runtime binary the container runs with. */
  Runtime: string;
  /** Its mounts (binds, volumes, tmpfs), decided at create; absent in records older than volumes. */
  Mounts?: MountPoint[];
  /** Its network (mode, bridge address for life, the current run's published ports); absent in older records: none. */
  Network?: ContainerNetwork;
}

/** Go's zero time, Docker's "never". */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function newState(): ContainerState {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
  };
}

export interface ContainerPaths {
  dir: string;
  record: string;
  bundle: string;
  rootfs: string;
  log: string;
  exitFile: string;
  pidFile: string;
  runtimeLog: string;
  stdin: string;
  consoleSocket: string;
  attachSocket: string;
  /** The monitor's watch socket (monitor-link.ts). */
  watchSocket: string;
  hostname: string;
  hosts: string;
  resolvConf: string;
}

export function containerPaths(dir: string): ContainerPaths {
  const p = (f: string): string => path.join(dir, f);
  return {
    dir,
    record: p('container.json'),
    bundle: p('bundle'),
    rootfs: p('rootfs'),
    log: p('json.log'),
    exitFile: p('exit.json'),
    pidFile: p('pid'),
    runtimeLog: p('runtime.log'),
    stdin: p('stdin'),
    consoleSocket: p('console.sock'),
    attachSocket: p('attach.sock'),
    watchSocket: p('monitor.sock'),
    hostname: p('hostname'),
    hosts: p('hosts'),
    resolvConf: p('resolv.conf'),
  };
}

/** The snapshot that holds a container's root filesystem. */
export function snapshotKey(id: string): string {
  return `ctr-${id}`;
}

export const SNAPSHOT_PREFIX = 'ctr-';
