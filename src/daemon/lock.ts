import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UnavailableError } from '../../volumes/shared/errors';
import { createFileExclusive } from '../../volumes/shared/atomic';
import { alive, formatRecord, isSelf, parseRecord, self, startedAt, type ProcessRecord } from '../../volumes/shared/process';

/** How long a new daemon waits for a live holder to finish exiting before it refuses. */
export const LOCK_WAIT_MS = 5_000;
const POLL_MS = 100;
/** How often a holder checks that the lock still names it. */
const WATCH_MS = 2_000;

/**
 * One daemon per data root. The lock is `<root>/berthd.pid` itself: it is created whole in
 * one step (createFileExclusive: written aside, then linked into place, which fails when the
 * name is taken), and it names its holder by pid, start time and boot id, so liveness is
 * decided by `alive` (volumes/shared/process.ts), never by the pid alone:
 * - a holder that is gone (exited; killed but not reaped yet, a zombie; or its pid now
 *   another process's) is taken over at once, so a crashed daemon restarts without delay;
 * - a live holder is waited for up to `waitMs` (it may be finishing its shutdown), then
 *   this daemon refuses with UNAVAILABLE, naming the holder and what it waited for.
 * An older berth's lock, a pid-only `berthd.pid` beside a `berthd.lock` directory, is read
 * the same way with only the pid to go by; the directory is removed once the root is ours.
 * While held, the lock is checked every few seconds: if another process has replaced it,
 * `onLost` is called; if someone deleted it, it is put back.
 */
export async function lockRoot(root: string, onLost: (e: Error) => void, waitMs = LOCK_WAIT_MS): Promise<() => Promise<void>> {
  const file = path.join(root, 'berthd.pid');
  const mine = formatRecord(self());
  const deadline = Date.now() + waitMs;
  for (;;) {
    // Read first: after a crash the old lock is there, and a create that must fail costs an fsync.
    const text = await readOrUndefined(file);
    if (text === undefined) {
      if (await createFileExclusive(file, mine, 0o644)) break;
      continue; // another daemon got it first: look at who
    }
    const holder = parseRecord(text);
    if (holder && isSelf(holder)) {
      throw new UnavailableError(`this process already owns the data root ${root}`, { hint: 'open the root once per process' });
    }
    if (!holder || !alive(holder)) {
      await takeOver(file, text);
      continue;
    }
    if (Date.now() >= deadline) throw heldBy(root, holder, waitMs);
    await sleep(POLL_MS);
  }
  await fs.promises.rm(path.join(root, 'berthd.lock'), { recursive: true, force: true }); // an older berth's lock directory

  const watch = setInterval(() => {
    void checkStillMine(file, mine).then((lost) => {
      if (!lost) return;
      clearInterval(watch);
      onLost(lost);
    });
  }, WATCH_MS);
  watch.unref();
  return async () => {
    clearInterval(watch);
    if ((await readOrUndefined(file)) === mine) await fs.promises.rm(file, { force: true });
  };
}

/**
 * Remove a dead holder's lock. It is renamed aside first and compared with what was judged
 * dead: if another daemon took the root over in between, the rename took ITS lock, which is
 * put back (if a third got in meanwhile, the second's watch sees that and it shuts down).
 */
async function takeOver(file: string, deadText: string): Promise<void> {
  const aside = `${file}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await fs.promises.rename(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    if ((await readOrUndefined(aside)) !== deadText) await fs.promises.link(aside, file).catch(() => undefined);
  } finally {
    await fs.promises.rm(aside, { force: true });
  }
}

/** An error if the lock no longer names this process; a deleted lock is put back. */
async function checkStillMine(file: string, mine: string): Promise<Error | undefined> {
  try {
    let text = await readOrUndefined(file);
    if (text === undefined && (await createFileExclusive(file, mine, 0o644))) return undefined;
    text ??= await readOrUndefined(file);
    if (text === mine) return undefined;
    return new Error(`${file} now names ${text === undefined ? 'no process' : `pid ${parseRecord(text)?.pid ?? '?'}`}`);
  } catch (e) {
    return e as Error;
  }
}

function heldBy(root: string, holder: ProcessRecord, waitMs: number): UnavailableError {
  const since = startedAt(holder);
  const who = `another berthd (pid ${holder.pid}${since ? `, started ${since.toISOString()}` : ''})`;
  return new UnavailableError(`${who} owns the data root ${root}; waited ${waitMs / 1000} s for it to exit and it is still running`, {
    hint: `use that daemon (its socket), stop it (kill ${holder.pid}), or give this one its own --root`,
  });
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
