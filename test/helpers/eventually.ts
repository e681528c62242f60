/**
 * The suite's one way to wait: poll the real condition until it holds, or fail saying what
 * was awaited. Never sleep a fixed time and then look — on a loaded 2-core machine the
 * sleep is either too short (a flake) or too long (a slow suite).
 *
 *   const info = await eventually(async () => {
 *     const i = await engine.inspect(id);
 *     return i.State.Running && i;
 *   }, { message: 'the container to run' });
 *
 * The condition holds when it returns a truthy value, which `eventually` returns. A throw
 * counts as "not yet" (the server may still be starting); the last throw or value goes into
 * the failure message. The timeout is a hang guard, not a claim about speed: keep it
 * generous. For "nothing happens" checks, wait with `eventually` for an observable that
 * proves the window passed (an event, a log line, a counter), then assert the absence.
 */

export interface EventuallyOptions {
  /** Give up after this many ms (default 30 s: a hang guard, not a speed claim). */
  timeout?: number;
  /** Poll every this many ms (default 50). */
  interval?: number;
  /** What is awaited, for the failure message: "the container to exit". */
  message?: string;
}

export class EventuallyTimeout extends Error {
  readonly code = 'EVENTUALLY_TIMEOUT' as const;
  constructor(
    message: string,
    readonly last: unknown,
  ) {
    super(message);
    this.name = 'EventuallyTimeout';
  }
}

/**
 * Pause for pacing only (a writer's rhythm, a poll interval of a helper): never to decide a
 * result. To wait for something, use `eventually` on the thing itself.
 */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pause = sleep;

function describe(v: unknown): string {
  if (v instanceof Error) return `threw ${v.name}: ${v.message}`;
  try {
    const s = JSON.stringify(v);
    return `returned ${s === undefined ? String(v) : s.length > 500 ? `${s.slice(0, 500)}…` : s}`;
  } catch {
    return `returned ${String(v)}`;
  }
}

/** Poll `condition` until it returns a truthy value; return that value. */
export async function eventually<T>(
  condition: () => T | Promise<T>,
  opts: EventuallyOptions = {},
): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const timeout = opts.timeout ?? 30_000;
  const interval = opts.interval ?? 50;
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await condition();
      if (v) return v as Exclude<T, false | 0 | '' | null | undefined>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - started >= timeout) {
      const what = opts.message ?? 'the condition';
      throw new EventuallyTimeout(`timed out after ${Math.round(timeout / 100) / 10} s waiting for ${what}; the last poll ${describe(last)}`, last);
    }
    await pause(interval);
  }
}
