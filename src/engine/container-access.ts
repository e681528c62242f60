import type { Snapshotter } from '../../volumes/layers/snapshotter';
import type { OciRuntime } from '../runtime/runtime';
import type { ContainerPaths, ContainerRecord } from './container-record';
import type { Volumes } from '../volumes/volumes';

/**
 * What the engine lends to the modules that work on one container from the side
 * (archive, stats, update, changes, disk usage), so they need no more than this from
 * it and the engine keeps the state machine to itself.
 *
 * Lifecycle: `record` is a snapshot read; `locked` orders a change with start/stop/remove
 * (hold it briefly: every lifecycle call on that container waits for it); `save` persists
 * a record changed under the lock; `withRootfs` gives a container's root filesystem:
 * the running container's own view (/proc/PID/root, its mounts included, no lock held)
 * or, stopped, its snapshot mounted for the call under the lock.
 */
export interface ContainerAccess {
  record(ref: string): ContainerRecord;
  all(): ContainerRecord[];
  paths(id: string): ContainerPaths;
  /** The container's cgroup path (e.g. `/berth-1a2b3c4d/<id>`). */
  cgroupsPath(id: string): string;
  locked<T>(ref: string, fn: (rec: ContainerRecord) => Promise<T>): Promise<T>;
  save(rec: ContainerRecord): Promise<void>;
  withRootfs<T>(ref: string, fn: (root: RootfsView) => Promise<T>): Promise<T>;
  runtimeFor(rec: ContainerRecord): OciRuntime;
  emit(rec: ContainerRecord, action: string, extra?: Record<string, string>): void;
  readonly snapshotter: Snapshotter;
  readonly volumes?: Volumes;
}

export interface RootfsView {
  rec: ContainerRecord;
  /** A host path of the root: /proc/PID/root (running) or the mounted snapshot (stopped). */
  root: string;
  /** true when `root` is the running container's view (its mounts are in it). */
  live: boolean;
}
