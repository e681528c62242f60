import type { Readable, Writable } from 'node:stream';

/**
 * What the image store offers the API. Shapes are the Docker Engine API v1.41 ones,
 * so the API layer passes them through untouched.
 */

/** GET /images/json item. */
export interface ImageSummary {
  Id: string; // sha256:<config digest>
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  Created: number; // unix seconds
  Size: number;
  SharedSize: number;
  VirtualSize: number;
  Labels: Record<string, string> | null;
  Containers: number;
}

/** GET /images/{name}/json (the subset of Docker's ImageInspect that berth fills). */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string; // RFC 3339
  Container: string;
  /** The source container's config, for a committed image. */
  ContainerConfig?: ImageConfigFields;
  DockerVersion: string;
  Author: string;
  Config: ImageConfigFields;
  Architecture: string;
  Os: string;
  Size: number;
  VirtualSize: number;
  GraphDriver: { Name: string; Data: Record<string, string> };
  RootFS: { Type: 'layers'; Layers: string[] };
  Metadata: { LastTagTime: string };
}

/** The `config` object of an OCI/Docker image config (capitalised as Docker does). */
export interface ImageConfigFields {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  StopSignal?: string;
  OnBuild?: string[] | null;
  /** SHELL: the shell of RUN/CMD/ENTRYPOINT's shell form in builds FROM this image. */
  Shell?: string[] | null;
  /** HEALTHCHECK (see src/engine/health.ts). */
  Healthcheck?: HealthConfig | null;
}

/** Docker's HealthConfig: the probe and its schedule; durations in nanoseconds, 0 = the default. */
export interface HealthConfig {
  /** ["CMD", cmd, args...], ["CMD-SHELL", "command"], ["NONE"], or [] (inherit the image's). */
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  /** Between probes while starting, within StartPeriod (API 1.44's; Interval when 0). */
  StartInterval?: number;
  Retries?: number;
}

/** GET /images/{name}/history item. */
export interface HistoryItem {
  Id: string; // image id for the top entry, '<missing>' below it
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
}

/** DELETE /images/{name} item. */
export interface DeleteItem {
  Untagged?: string;
  Deleted?: string;
}

/** Progress of a long operation, for the JSON message stream and the CLI's bars. */
export type Progress = (p: { status: string; current?: number; total?: number; id?: string }) => void;

/** What the engine needs to run a container from an image (used by later issues). */
export interface ResolvedImage {
  id: string;
  /** The snapshotter name of the image's top layer ('' for an image with no layers). */
  topLayer: string;
  config: ImageConfigFields;
}

export interface ImportOptions {
  repo?: string; // e.g. 'myimage' or 'myimage:tag'
  tag?: string;
  /** Dockerfile-like instructions (`CMD ["sh"]`, `ENV A=b`, ...) applied to the config. */
  changes?: string[];
  message?: string;
  progress?: Progress;
}

export interface VendorOptions {
  ref: string;
  binaries: string[];
  cmd?: string[];
  entrypoint?: string[];
  progress?: Progress;
}

export interface BootstrapOptions {
  ref: string; // e.g. 'debian:bookworm'
  mirror?: string;
  progress?: Progress;
}

export interface ImageService {
  list(opts?: { all?: boolean; filters?: Record<string, string[]> }): Promise<ImageSummary[]>;
  inspect(ref: string): Promise<ImageInspect>;
  history(ref: string): Promise<HistoryItem[]>;
  /** Give image `ref` the name repo[:tag] (tag defaults to latest). */
  tag(ref: string, repo: string, tag?: string): Promise<void>;
  /** Untag and, when no tag is left (or force), delete. */
  remove(ref: string, opts?: { force?: boolean; noprune?: boolean }): Promise<DeleteItem[]>;
  /** `docker import`: one rootfs tarball (plain or gzip) becomes a one-layer image. */
  importRootfs(input: Readable, opts: ImportOptions): Promise<{ id: string }>;
  /** `docker load`: a `docker save` archive or an OCI image layout tarball. */
  load(input: Readable, opts?: { progress?: Progress }): Promise<{ loaded: string[] }>;
  /** `docker save`: writes a tarball that is both a docker-archive and an OCI layout. */
  save(refs: string[], out: Writable): Promise<void>;
  vendor(opts: VendorOptions): Promise<{ id: string }>;
  bootstrap(opts: BootstrapOptions): Promise<{ id: string; cached: boolean }>;
  /** The image to run; makes busybox on first use. */
  resolve(ref: string): Promise<ResolvedImage>;
  close(): Promise<void>;
}
