import type { Readable } from 'node:stream';
import type { ContainerArchive } from '../engine/archive';
import type { RootfsView } from '../engine/container-access';
import type { CommitOptions } from '../engine/filesystem';
import type { ContainerService, CreateBody, CreateOptions } from '../engine/service';
import type { ConfigCommitSpec } from '../images/layer-spec';
import type { ImageConfigFields, ImageInspect, Progress, ResolvedImage } from '../images/service';

/**
 * What the builder needs from the rest of the house, as small interfaces: the engine's
 * create/start/wait/logs/commit/remove for RUN and COPY steps, the archive room to write
 * into a step's container and to read a root filesystem, and the image store's lookups,
 * tags and config-only commits. The daemon wires the real ones (src/daemon/daemon.ts).
 */

export type BuildContainers = Pick<ContainerService, 'start' | 'wait' | 'logs' | 'remove' | 'kill'> & {
  create(body: CreateBody, name?: string, opts?: CreateOptions): Promise<{ Id: string; Warnings: string[] }>;
  commit(ref: string, opts: CommitOptions): Promise<{ Id: string }>;
};

export interface BuildFiles {
  put: ContainerArchive['put'];
  stat: ContainerArchive['stat'];
  /** A stopped container's root filesystem for the call (its snapshot mounted). */
  withRootfs<T>(ref: string, fn: (v: RootfsView) => Promise<T>): Promise<T>;
}

export interface BuildImages {
  resolve(ref: string): Promise<ResolvedImage>;
  inspect(ref: string): Promise<ImageInspect>;
  tag(ref: string, repo: string, tag?: string): Promise<void>;
  commitImageConfig(parentImageId: string | null, spec: ConfigCommitSpec): Promise<{ id: string }>;
  /**
   * --cache-from by history (images without a parent chain here, e.g. loaded): the image
   * for the step that made `createdBy` on `parent`, taken from one of `sources`.
   */
  historyCacheHit(parent: string | null, sources: string[], createdBy: string, config: ImageConfigFields): Promise<{ id: string; source: string } | undefined>;
  /** Every image id (to drop cache entries whose image is gone). */
  ids(): Promise<Set<string>>;
  /** Pull `ref` from its registry; absent while berth has no registry client. */
  pull?: (ref: string, opts: { auth?: Record<string, unknown>; progress?: Progress }) => Promise<void>;
}

/** Where a build's progress goes: Docker's JSON stream lines. */
export interface BuildOutput {
  stream(text: string): void;
  aux(value: Record<string, unknown>): void;
}

export interface BuildRequest {
  context: Readable;
  dockerfile: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  labels: Record<string, string>;
  noCache: boolean;
  pull: boolean;
  /** Remove step containers after a successful step (Docker's rm, default true). */
  rm: boolean;
  /** Remove them always (Docker's forcerm). berth removes a failed step's container unless rm is off. */
  forceRm: boolean;
  target?: string;
  /** RUN containers' network: 'default'/'bridge' (the daemon's bridge), 'host' or 'none'. */
  networkMode: string;
  extraHosts: string[];
  cacheFrom: string[];
  /** The ids of the cacheFrom images found (set by the builder): hits only on their chains. */
  cacheSources?: string[];
  quiet: boolean;
  platform?: string;
  /** Resource limits for RUN containers (Docker's memory, memswap, cpuperiod, cpuquota, shmsize). */
  limits: { Memory?: number; MemorySwap?: number; CpuPeriod?: number; CpuQuota?: number; ShmSize?: number };
  /** X-Registry-Config: auth configs by registry, for pulls during the build. */
  authConfigs?: Record<string, unknown>;
  signal?: AbortSignal;
}

/** What a RUN or COPY/ADD step gets from its build. */
export interface StepDeps {
  containers: BuildContainers;
  files: BuildFiles;
  images: BuildImages;
  cache: import('./cache').BuildCache;
  req: BuildRequest;
  say(text: string): void;
}
