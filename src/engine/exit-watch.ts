import * as fs from 'node:fs';
import * as path from 'node:path';
import { readExit, type ExitRecord } from '../runtime/monitor';

/** watchExit's rejection when the monitor died (kill -9, OOM) and no exit record will come. */
export class MonitorGoneError extends Error {}

/**
 * The backstop poll of a run's exit watch: $BERTH_MONITOR_POLL_MS (tests stretch it to
 * prove the events alone are enough), else 5 s. Events do the work: the exit record's
 * directory watch and the monitor's watch connection (monitor-link.ts).
 */
export function monitorPollMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.BERTH_MONITOR_POLL_MS);
  return Number.isSafeInteger(v) && v > 0 ? v : 5000;
}

/**
 * Wait for a container's exit record (the monitor writes it atomically: temp file, then
 * rename). Unlike a plain directory watch this wakes only for the exit file's own name,
 * so a chatty container appending to its log next to it costs nothing; a slow poll covers
 * missed events. Rejects (with the signal's reason) when `signal` aborts, and with
 * MonitorGoneError when `monitorGone` (asked at every poll and every wake) says the
 * monitor is dead and still no record is there. `link`, given a wake function, wires an
 * event that means "look now" (the monitor's watch connection ended) and returns its undo.
 */
export async function watchExit(
  exitFile: string,
  signal: AbortSignal,
  pollMs = 1000,
  monitorGone?: () => Promise<boolean>,
  link?: (wake: () => void) => () => void,
): Promise<ExitRecord> {
  const name = path.basename(exitFile);
  let wake: (() => void) | undefined;
  let pending = false;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    if (w) w();
    else pending = true;
  };
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(path.dirname(exitFile), { persistent: false }, (_ev, f) => {
      if (f === null || f === name) poke();
    });
    watcher.on('error', () => undefined);
  } catch {
    // cannot watch: the poll alone finds it
  }
  signal.addEventListener('abort', poke);
  const unlink = link?.(poke);
  try {
    for (;;) {
      signal.throwIfAborted();
      pending = false;
      const rec = await readExit(exitFile);
      if (rec) return rec;
      if (pending || signal.aborted) continue;
      // The monitor writes the record and then exits: gone without one, it never will.
      if (monitorGone && (await monitorGone())) {
        const last = await readExit(exitFile);
        if (last) return last;
        throw new MonitorGoneError(`the container's monitor died without recording an exit (${exitFile})`);
      }
      // An event that came while monitorGone was asked would be lost by the wait below
      // (a whole poll interval, 1 s, added to a short run): read again at once.
      if (pending) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => poke(), pollMs);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  } finally {
    signal.removeEventListener('abort', poke);
    unlink?.();
    watcher?.close();
  }
}
