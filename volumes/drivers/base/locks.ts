/**
 * One lock per volume name, held for the length of an operation, so operations on one
 * volume never interleave: not in this process (a promise queue per name, no polling) and
 * not across processes (proper-lockfile: an atomic mkdir of `<dir>/<key>.lock`, kept
 * fresh while held, taken over when stale because its holder died).
 *
 * A holder that died is found out at once rather than after STALE_MS: beside its lock
 * directory each holder writes `<key>.owner`, naming itself (pid, start time, boot id:
 * volumes/shared/process.ts) and the lock directory it made (inode and birth time, so an
 * owner file left by an earlier holder never speaks for a newer lock). A contender that
 * finds the lock held by a process that is gone breaks it and takes it. Without this, a
 * berthd restarted within seconds of a SIGKILL found its predecessor's locks still fresh
 * and left those volumes unrepaired until something touched them.
 *
 * Lock files are named by a hash of the volume name, not the name itself: names may be
 * 255 bytes, one more suffix would not fit in a directory entry. They live on the data
 * root's own filesystem, never in a btrfs pool, so a full pool can still be locked (and
 * cleaned up).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { ConflictError } from '../../shared/errors';
import { KeyedQueue } from '../../shared/keyed-queue';
import { alive, formatRecord, parseRecord, self } from '../../shared/process';

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
      const unlock = await lockHeld(file, wait);
      await writeOwner(file);
      return async () => {
        await fs.promises.rm(ownerFile(file), { force: true });
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

function lockOptions(file: string, retries: typeof RETRIES | 0): Parameters<typeof lockfile.lock>[1] {
  return {
    realpath: false,
    stale: STALE_MS,
    update: STALE_MS / 4,
    retries,
    // The default throws from a timer, killing the process. A lost lock means another
    // process decided we were dead (we stalled for STALE_MS): say so, keep running.
    onCompromised: (e) => process.emitWarning(`berth: volume lock ${file} was lost: ${e.message}`),
  };
}

/** Take `file`'s lock: at once if free, at once if its holder is dead, else (if `wait`) when freed. */
async function lockHeld(file: string, wait: boolean): Promise<() => Promise<void>> {
  try {
    return await lockfile.lock(file, lockOptions(file, 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    if (!(await breakIfHolderDead(file)) && !wait) throw e;
    return lockfile.lock(file, lockOptions(file, wait ? RETRIES : 0));
  }
}

const ownerFile = (file: string): string => `${file}.owner`;
const lockDir = (file: string): string => `${file}.lock`;

/** The lock directory's identity: inode and birth time (a new directory with a reused inode is born later). */
async function lockIdentity(file: string): Promise<string | undefined> {
  const st = await fs.promises.stat(lockDir(file), { bigint: true }).catch(() => undefined);
  return st && `${st.ino}.${st.birthtimeNs}`;
}

/**
 * Written whole (temp file, rename) but not synced: it only matters while this boot lasts
 * (the boot id in it says so), and a lost one leaves the lock to go stale as before.
 */
async function writeOwner(file: string): Promise<void> {
  const tmp = `${ownerFile(file)}.${process.pid}`;
  await fs.promises.writeFile(tmp, `${formatRecord(self())}lock=${await lockIdentity(file)}\n`, { mode: 0o600 });
  await fs.promises.rename(tmp, ownerFile(file));
}

/**
 * Remove `file`'s lock if the owner file names a dead process and this very lock
 * directory. True if the lock was broken (or is gone). A holder that has not written its
 * owner file yet is left alone: the file then names another directory, or none.
 */
async function breakIfHolderDead(file: string): Promise<boolean> {
  const text = await fs.promises.readFile(ownerFile(file), 'utf8').catch(() => undefined);
  const rec = text === undefined ? undefined : parseRecord(text);
  const lock = text?.match(/^lock=(.+)$/m)?.[1];
  if (!rec || !lock || alive(rec)) return false;
  const now = await lockIdentity(file);
  if (now === undefined) return true;
  if (now !== lock) return false;
  await fs.promises.rmdir(lockDir(file)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await fs.promises.rm(ownerFile(file), { force: true });
  return true;
}
