/**
 * One lock per volume name, held for the length of an operation, so operations on one
 * volume never interleave: not in this process (a promise queue per name, no polling) and
 * not across processes (proper-lockfile: an atomic mkdir of `<dir>/<key>.lock`, kept
 * fresh while held, taken over when stale because its holder died).
 *
 * Lock files are named by a hash of the volume name, not the name itself: names may be
 * 255 bytes, one more suffix would not fit in a directory entry. They live on the data
 * root's own filesystem, never in a btrfs pool, so a full pool can still be locked (and
 * cleaned up).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { ConflictError } from '../../shared/errors';
import { KeyedQueue } from '../../shared/keyed-queue';

export type Release = () => Promise<void>;

/** How long another process may keep a volume busy before we give up: about 2 minutes. */
const RETRIES = { retries: 250, factor: 1.3, minTimeout: 10, maxTimeout: 500 };
const STALE_MS = 10_000;

export function lockKey(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 32);
}

export class VolumeLocks {
  private readonly queues = new KeyedQueue();

  constructor(private readonly dir: string) {}

  /** Run `fn` holding the locks of every name in `names` (taken in a fixed order: no deadlock). */
  async with<T>(names: string[], fn: () => Promise<T>): Promise<T> {
    const keys = [...new Set(names.map(lockKey))].sort();
    const held: Release[] = [];
    try {
      for (const k of keys) held.push(await this.acquire(k, true));
      return await fn();
    } finally {
      for (const r of held.reverse()) await r();
    }
  }

  /** Take the lock of `name` only if it is free right now; null if someone holds it. */
  async tryLock(name: string): Promise<Release | null> {
    const r = await this.tryLockKey(lockKey(name));
    return r === 'busy' ? null : r;
  }

  /**
   * tryLock by the key itself (debris in staging carries the key, not the name): 'busy'
   * if held, null if `key` is not a lock key at all (so nobody can hold it).
   */
  async tryLockKey(key: string): Promise<Release | 'busy' | null> {
    if (!/^[0-9a-f]{32}$/.test(key)) return null;
    if (this.queues.busy(key)) return 'busy';
    return this.acquire(key, false).catch((e) => {
      if (e instanceof ConflictError) return 'busy' as const;
      throw e;
    });
  }

  private async acquire(key: string, wait: boolean): Promise<Release> {
    const local = await this.queues.acquire(key);
    const file = path.join(this.dir, key);
    try {
      const unlock = await lockfile.lock(file, {
        realpath: false,
        stale: STALE_MS,
        update: STALE_MS / 4,
        retries: wait ? RETRIES : 0,
        // The default throws from a timer, killing the process. A lost lock means another
        // process decided we were dead (we stalled for STALE_MS): say so, keep running.
        onCompromised: (e) => process.emitWarning(`berth: volume lock ${file} was lost: ${e.message}`),
      });
      return async () => {
        await unlock().catch(() => undefined); // already released or taken over: nothing to undo
        local();
      };
    } catch (e) {
      local();
      if ((e as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new ConflictError('the volume is busy: another process is operating on it', {
          hint: 'retry when that operation has finished',
        });
      }
      throw e;
    }
  }

}
