import type { Readable } from 'node:stream';
import type { ContainerRecord } from './container-record';
import { Mutex } from './mutex';
import { Pulse } from './pulse';
import { Backoff } from './restart-policy';
import type { StdinPipe } from './stdin-pipe';
import type { TtySession } from './tty';

/**
 * What the engine holds in memory for one container besides its record: the lock that
 * orders its state changes, the watch on the current run, the waiters, its stdin, and the
 * restart manager's state. Nothing here is persisted: after a daemon restart it is
 * rebuilt by reconcile.
 */
export class LiveContainer {
  readonly lock = new Mutex();
  /** Counts runs, so a late watcher of an old run can never end a newer one. */
  run = 0;
  /** Aborts the watch on the current run's exit record. */
  watch?: AbortController;
  /** Resolves once the current run's exit has been handled (never rejects). */
  runEnded: Promise<void> = Promise.resolve();
  /** Fired with the exit code when a run ends, a start fails, or the container is removed. */
  readonly exited = new Pulse<number>();
  /**
   * Fired as soon as a run's exit record is read, before its cleanup: the monitor writes
   * the record only after draining the output, so attached clients can end right away.
   */
  readonly outputEnded = new Pulse<void>();
  /** Fired with the last exit code when the container is removed. */
  readonly removed = new Pulse<number>();
  stdin?: StdinPipe;
  /** The pty session of a tty container's current run (berth-monitor holds the pty). */
  tty?: TtySession;
  /** Fired when a tty run's terminal is ready, just before its process starts (clients attached before the start wait for it). */
  readonly started = new Pulse<void>();
  /** Clients' stdin attached before the next start. */
  readonly pendingStdin: Readable[] = [];
  restartTimer?: NodeJS.Timeout;
  /** A user asked it to stay down (stop, remove): no restart policy applies until started again. */
  canceled = false;
  readonly backoff = new Backoff();
  removing = false;

  constructor(public rec: ContainerRecord) {}

  get id(): string {
    return this.rec.Id;
  }
}
