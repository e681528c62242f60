import type { Readable, Writable } from 'node:stream';
import type { CallerFile } from '../../volumes/shared/caller-file';
import type { ImageConfigFields } from '../images/service';

/**
 * What the container engine offers the API. Shapes are the Docker Engine API v1.41 ones
 * (POST /containers/create bodies, GET /containers/json items, inspect), so the API layer
 * passes them through.
 */

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'on-failure' | 'unless-stopped';
  MaximumRetryCount?: number;
}

export interface HostConfig {
  AutoRemove?: boolean;
  RestartPolicy?: RestartPolicy;
  ReadonlyRootfs?: boolean;
  Memory?: number; // bytes, 0 = unlimited
  MemorySwap?: number;
  NanoCpus?: number; // 1e9 = one CPU
  CpuQuota?: number;
  CpuPeriod?: number;
  PidsLimit?: number | null;
  Init?: boolean | null;
  Runtime?: string; // an OCI runtime path or name (berth's runtime API)
  LogConfig?: { Type?: string; Config?: Record<string, string> }; // json-file, local or none (log-drivers.ts)
  Binds?: string[] | null;
  ShmSize?: number;
  NetworkMode?: string;
  PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }>> | null;
  Dns?: string[] | null;
  DnsSearch?: string[] | null;
  DnsOptions?: string[] | null;
  ExtraHosts?: string[] | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Privileged?: boolean;
  SecurityOpt?: string[] | null;
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }> | null;
  Sysctls?: Record<string, string> | null;
  Devices?: Array<{ PathOnHost: string; PathInContainer?: string; CgroupPermissions?: string }> | null;
  DeviceCgroupRules?: string[] | null;
  Tmpfs?: Record<string, string> | null;
  GroupAdd?: string[] | null;
  [k: string]: unknown;
}

/** POST /containers/create body: Docker's Config plus HostConfig. */
export interface CreateBody extends ImageConfigFields {
  Image: string;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  /** Seconds `stop` waits before SIGKILL (Docker's --stop-timeout); -1 waits for ever. */
  StopTimeout?: number | null;
  MacAddress?: string;
  Shell?: string[] | null;
  ArgsEscaped?: boolean;
  NetworkDisabled?: boolean;
  HostConfig?: HostConfig;
  NetworkingConfig?: unknown;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** One probe's result, as State.Health.Log shows it. */
export interface HealthResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** State.Health in inspect. */
export interface HealthState {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthResult[];
}

export interface ContainerState {
  Status: ContainerStatus;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string; // RFC 3339, '0001-01-01T00:00:00Z' when never
  FinishedAt: string;
  /** Only for a container with a health check (health.ts). */
  Health?: HealthState;
}

/** GET /containers/{id}/json (the part berth fills). */
export interface ContainerInspect {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  State: ContainerState;
  Image: string; // image id
  ResolvConfPath: string;
  HostnamePath: string;
  HostsPath: string;
  LogPath: string;
  Name: string; // '/name'
  RestartCount: number;
  Driver: string;
  Platform: string;
  MountLabel: string;
  ProcessLabel: string;
  AppArmorProfile: string;
  ExecIDs: string[] | null;
  HostConfig: HostConfig;
  GraphDriver: { Name: string; Data: Record<string, string> };
  Mounts: unknown[];
  Config: CreateBody & { Hostname: string; Image: string; Labels: Record<string, string> };
  NetworkSettings: Record<string, unknown>;
}

/** GET /containers/json item. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  Ports: unknown[];
  Labels: Record<string, string>;
  State: ContainerStatus;
  Status: string; // 'Up 3 minutes', 'Exited (0) 2 seconds ago'
  HostConfig: { NetworkMode: string };
  NetworkSettings: { Networks: Record<string, unknown> };
  Mounts: unknown[];
  SizeRw?: number;
  SizeRootFs?: number;
}

export interface LogOptions {
  follow?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  since?: number;
  until?: number;
  timestamps?: boolean;
  tail?: number;
  signal?: AbortSignal;
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
  time: string;
}

export interface ExecConfig {
  Cmd: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  Tty?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Privileged?: boolean;
  /** [height, width] of the exec's pty (Tty), as Docker's API has it. */
  ConsoleSize?: [number, number] | null;
  /** The keys that detach a client from a tty exec (default ctrl-p,ctrl-q); the process runs on. */
  DetachKeys?: string;
}

/** Where an exec's I/O goes. `onDetach`: the client typed the detach keys (tty execs); the process runs on. */
export interface ExecIO {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  onDetach?: () => void;
}

export interface ExecInspect {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  ProcessConfig: { entrypoint: string; arguments: string[]; tty: boolean; user: string; privileged: boolean };
  OpenStdin: boolean;
  OpenStdout: boolean;
  OpenStderr: boolean;
  CanRemove: boolean;
  DetachKeys: string;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

/** The engine's create options for in-process callers (not part of Docker's API; the builder's). */
export interface CreateOptions {
  /**
   * false: the image's VOLUMEs get no anonymous volumes (the builder's COPY and WORKDIR
   * containers, which write into the image's own filesystem, as Docker's builder does).
   */
  imageVolumes?: boolean;
}

export interface ContainerService {
  create(body: CreateBody, name?: string): Promise<{ Id: string; Warnings: string[] }>;
  /** Starting a running container is not an error: it answers `false` (HTTP 304). */
  start(ref: string): Promise<boolean>;
  /** SIGTERM (or the image's StopSignal), SIGKILL after `timeout` seconds; false if it was not running. */
  stop(ref: string, opts?: { timeout?: number; signal?: string }): Promise<boolean>;
  restart(ref: string, opts?: { timeout?: number }): Promise<void>;
  kill(ref: string, signal?: string): Promise<void>;
  pause(ref: string): Promise<void>;
  unpause(ref: string): Promise<void>;
  /** Resolves with the exit code when the condition is met. */
  wait(ref: string, condition?: WaitCondition, signal?: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }>;
  remove(ref: string, opts?: { force?: boolean; volumes?: boolean }): Promise<void>;
  list(opts?: { all?: boolean; limit?: number; size?: boolean; filters?: Record<string, string[]> }): Promise<ContainerSummary[]>;
  inspect(ref: string): Promise<ContainerInspect>;
  rename(ref: string, newName: string): Promise<void>;
  top(ref: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }>;
  prune(filters?: Record<string, string[]>): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }>;
  /** The container's output from its log: history, then (with follow) live until it stops. */
  logs(ref: string, opts: LogOptions): AsyncIterable<OutputChunk>;
  /**
   * Attach to a container: live output (from now on, or with `logs` from the start) until
   * it stops, and, when `stdin` is given and the container has OpenStdin, its input.
   */
  attach(ref: string, opts: { stdin?: Readable; stdout?: boolean; stderr?: boolean; logs?: boolean; stream?: boolean; signal?: AbortSignal }): Promise<AsyncIterable<OutputChunk>>;
  execCreate(ref: string, cfg: ExecConfig): Promise<{ Id: string }>;
  /**
   * Run an exec; output goes to `stdout`/`stderr` (a tty's one stream to `stdout`); resolves
   * with its exit code. A failure to start it leaves its ExitCode set (126, or 127 for a
   * missing command), as Docker does.
   */
  execStart(execId: string, io: ExecIO): Promise<number>;
  execInspect(execId: string): Promise<ExecInspect>;
  /** The container's changes as a new layer on its image. */
  commit(ref: string, opts: { repo?: string; tag?: string; comment?: string; author?: string; changes?: string[]; pause?: boolean; config?: Partial<ImageConfigFields> }): Promise<{ Id: string }>;
  /**
   * The container's filesystem as a tar stream into `out`; with `to` (a file the caller
   * opened on this host: volumes/shared/caller-file.ts) berthd writes it into that file
   * itself and `out` only ends.
   */
  export(ref: string, out: Writable, to?: CallerFile): Promise<void>;
  /** The iptables rules a container made from `body` would get (`berth run --dry-run`); creates nothing. */
  networkPlan(body: CreateBody): Promise<{ Rules: string[]; Warnings: string[] }>;
  close(): Promise<void>;
}

/** One attached terminal client, as the engine (and its tty session, tty.ts) sees it. */
export interface TtyClient {
  /** Send bytes; false when its buffer is full (the session checks `backlog`). */
  write(data: Buffer): boolean;
  /** Bytes queued and not yet sent. */
  backlog(): number;
  /** Drop the client (its connection is closed). */
  close(reason: string): void;
  /** Resolves when its backlog has been sent. */
  drained(): Promise<void>;
}

/** Interactive terminals (tty containers and execs): what the API's hijacked streams use. */
export interface TtyService {
  /** Check an attach before the stream opens (so errors are HTTP errors); the detach keys to use. */
  attachTtyCheck(ref: string, detachKeys?: string, size?: { rows?: number; cols?: number }): Promise<{ detachKeys: string }>;
  /** Serve one client until it detaches, its input ends or the run ends. */
  attachTty(
    ref: string,
    opts: { client: TtyClient; input?: Readable; detachKeys?: string; size?: { rows?: number; cols?: number }; clientId?: string; signal?: AbortSignal },
  ): Promise<'detached' | 'ended'>;
  resize(ref: string, rows: number, cols: number, clientId?: string): Promise<void>;
  execResize(execId: string, rows: number, cols: number): Promise<void>;
}
