import type { RestartPolicy } from './service';

/**
 * Docker's restart manager (moby restartmanager), as two small pieces: the decision and
 * the backoff. Words:
 *   manual stop  a user stopped or killed the container (persisted: `unless-stopped`
 *                stays down even across daemon restarts);
 *   canceled     a user asked it to stay down now (stop, kill with the stop signal,
 *                remove): no policy restarts it until it is started again. Not persisted,
 *                so at daemon start `always` brings a manually stopped container back,
 *                as Docker does.
 */

export interface ExitFacts {
  exitCode: number;
  restartCount: number;
  manualStop: boolean;
  canceled: boolean;
}

export function shouldRestart(policy: RestartPolicy | undefined, f: ExitFacts): boolean {
  if (f.canceled) return false;
  switch (policy?.Name) {
    case 'always':
      return true;
    case 'unless-stopped':
      return !f.manualStop;
    case 'on-failure': {
      const max = policy.MaximumRetryCount ?? 0;
      return f.exitCode !== 0 && (max <= 0 || f.restartCount < max);
    }
    default:
      return false;
  }
}

const INITIAL_MS = 100;
const MAX_MS = 60_000;
/** A run this long resets the backoff. */
const RESET_AFTER_MS = 10_000;

/** 100 ms, doubling per restart up to a minute; back to 100 ms after a run of 10 s or more. */
export class Backoff {
  private delay = 0;

  next(ranForMs: number): number {
    if (ranForMs >= RESET_AFTER_MS) this.delay = 0;
    this.delay = this.delay === 0 ? INITIAL_MS : Math.min(this.delay * 2, MAX_MS);
    return this.delay;
  }

  reset(): void {
    this.delay = 0;
  }
}
