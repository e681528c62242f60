/**
 * When and how far the loop-backed pool grows (the plan; pool.ts does the I/O).
 *
 * A Docker volume can use the whole disk it sits on; a pool file of fixed size cannot, and
 * one volume that fills it stops writes to all the others. So the pool grows before it
 * fills, as long as the host has room:
 *   - it grows when less than GROW_WHEN_FREE of it (at least MIN_HEADROOM) is free;
 *   - by half its size (at least MIN_STEP), up to the host's room;
 *   - the host's room is what the pool file may still take without the host's
 *     filesystem dropping below its reserve (1% of it, 64 MiB to 1 GiB, the same reserve
 *     the unpack checks keep: volumes/shared/unpack-guard.ts). The file is allocated
 *     (pool.ts), so the room it grows into is taken from the host at once; a hole in it
 *     (a trimmed or older, sparse pool) counts against the room too: the pool's size never
 *     promises more than the host had when it grew.
 * Near a full host the plan says `hostFull`: the driver refuses new volumes, snapshots,
 * clones and imports with an error naming the pool, before btrfs or the loop device fail.
 *
 *   growthPlan({ size: 1 GiB, free: 100 MiB, allocated: 950 MiB }, { size: 80 GiB, free: 40 GiB })
 *     // { grow: 1.5 GiB }
 */
import { reserveFor } from '../../shared/unpack-guard';

const MiB = 1024 * 1024;
export const GROW_WHEN_FREE = 0.25;
export const MIN_HEADROOM = 64 * MiB;
export const MIN_STEP = 64 * MiB;
/** A grow of less than this is not worth a resize: the host is as good as full. */
export const SMALLEST_GROW = 16 * MiB;

export interface PoolSpace {
  /** The pool filesystem's size and its free bytes (statfs). */
  size: number;
  free: number;
  /** Host bytes the pool file takes now (less than fileSize only where it has holes). */
  allocated: number;
  /** The pool file's apparent size. */
  fileSize: number;
}

export interface HostSpace {
  size: number;
  free: number;
}

export type GrowthPlan = { grow: number } | { hold: 'enough' | 'hostFull'; room: number };

/**
 * How many more bytes the pool file may take: the host's free space above its reserve,
 * less what the file's holes (if any) already promise but do not hold yet.
 */
export function growRoom(pool: PoolSpace, host: HostSpace): number {
  const room = Math.max(host.free - reserveFor(host.size), 0);
  return room - Math.max(pool.fileSize - pool.allocated, 0);
}

/** What to do now. `grow` is the pool file's new total size. */
export function growthPlan(pool: PoolSpace, host: HostSpace): GrowthPlan {
  const wanted = Math.max(pool.size * GROW_WHEN_FREE, MIN_HEADROOM);
  const spare = growRoom(pool, host);
  if (pool.free >= wanted) return { hold: 'enough', room: spare };
  const step = Math.max(pool.fileSize / 2, MIN_STEP);
  const grow = Math.min(step, spare);
  if (grow < SMALLEST_GROW) return { hold: 'hostFull', room: spare };
  return { grow: Math.floor((pool.fileSize + grow) / MiB) * MiB };
}
