import type { ExitRecord } from '../runtime/monitor';

/**
 * What became of a container that was running (or paused) when berthd last saw it. The
 * engine asks this once per such container when it opens (daemon start), and acts:
 *
 *   exited   the monitor recorded an exit while berthd was down: record it, clean up
 *            (runtime delete, unmount), apply the restart policy;
 *   adopt    no exit yet and its monitor lives: watch the exit record again, exactly as
 *            if berthd had never gone (logs, stop, exec, top work on it);
 *   lost     no exit record and no monitor (a host reboot, or both killed behind our
 *            back): nobody can tell how it ended, so it exited with 255 (Docker's
 *            "unknown"); whatever of it the runtime still has is killed and deleted, and
 *            the restart policy applies (this brings `always` containers back after a reboot).
 */
export type Recovery = { kind: 'exited'; exit: ExitRecord } | { kind: 'adopt' } | { kind: 'lost'; exit: ExitRecord };

export const UNKNOWN_EXIT_CODE = 255;

/** An exit nobody recorded: status 255, now. */
export function unknownExit(now = new Date()): ExitRecord {
  return { exitCode: UNKNOWN_EXIT_CODE, signal: null, oomKilled: false, finishedAt: now.toISOString() };
}

export function recoverRunning(exit: ExitRecord | undefined, monitorAlive: boolean, now = new Date()): Recovery {
  if (exit) return { kind: 'exited', exit };
  if (monitorAlive) return { kind: 'adopt' };
  return { kind: 'lost', exit: unknownExit(now) };
}
