import { faultReachedLine } from '../../volumes/shared/fault';
import type { TestDaemon } from './daemon';
import { eventually } from './eventually';

/**
 * Crash tests at a named step (volumes/shared/fault.ts): start a process with
 * `faultEnv(step)`, wait with `atFault` until it stopped there, look at the debris, SIGKILL it.
 */
export function faultEnv(step: string): NodeJS.ProcessEnv {
  return { BERTH_FAULT: step };
}

/** Wait until the output read by `output()` (a daemon's log, a child's stderr) says the process stopped at `step`. */
export async function atFault(output: () => string, step: string, timeout = 180_000): Promise<void> {
  await eventually(() => output().includes(faultReachedLine(step)), { timeout, interval: 20, message: `the process to stop at fault point ${step}` });
}

/**
 * Crash `d` in the middle of `op`, at `step`: restart it with the step armed, start `op`,
 * wait until the daemon stopped there, run `debris` (assert what the crash is about to
 * leave), SIGKILL it, run `afterKill`, and start it again unarmed. Resolves once the new daemon answers.
 */
export async function crashAt(
  d: TestDaemon,
  step: string,
  op: () => Promise<unknown>,
  debris: () => void | Promise<void>,
  opts: { afterKill?: () => Promise<void> } = {},
): Promise<void> {
  await d.terminate();
  const from = d.log().length;
  await d.restart(faultEnv(step));
  const pending = op().then(
    () => 'done',
    () => 'failed',
  );
  const ended = pending.then((how) => {
    throw new Error(`the operation ${how} without reaching fault point ${step}`);
  });
  await Promise.race([atFault(() => d.log().slice(from), step), ended]);
  ended.catch(() => undefined);
  await debris();
  await d.kill();
  await pending;
  await opts.afterKill?.();
  await d.restart();
}
