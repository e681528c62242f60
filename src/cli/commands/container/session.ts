import type { CliContext } from '../../context';
import { BerthError, InvalidArgumentError, NotFoundError } from '../../../../volumes/shared/errors';
import { pullWithProgress } from '../registry';
import { attachTerminal, runTerminal, type TerminalStream } from '../../terminal';
import type { CreateBody } from '../../../engine/service';
import { pumpOutput } from './output';

/**
 * The client side of a container run: create (fetching the image on a miss), then either
 * stream its output to the end (`run`, `npm start`'s demo) or hold a terminal session
 * (`run -it`, `attach` to a tty container).
 */

export async function createContainer(ctx: CliContext, body: CreateBody, name?: string, o: { pull?: string; platform?: string } = {}): Promise<string> {
  const policy = o.pull ?? 'missing';
  if (!['always', 'missing', 'never'].includes(policy)) {
    throw new InvalidArgumentError(`invalid --pull ${JSON.stringify(policy)}`, { hint: 'use --pull always, missing or never' });
  }
  if (policy === 'always') await pullWithProgress(ctx, body.Image, { platform: o.platform });
  let made: { Id: string; Warnings: string[] };
  try {
    made = await ctx.containers.create(body, name, { platform: o.platform });
  } catch (e) {
    if (!(e instanceof NotFoundError) || !/image/i.test(e.message) || policy === 'always') throw e;
    if (policy === 'never') {
      if (o.platform) throw e; // held, but for another platform: the daemon's error says which
      throw new NotFoundError(`No such image: ${body.Image}`, { hint: `pull it first (berth pull ${body.Image}), or drop --pull never` });
    }
    process.stderr.write(`Unable to find image '${body.Image}' locally\n`);
    await pullWithProgress(ctx, body.Image, { platform: o.platform });
    made = await ctx.containers.create(body, name, { platform: o.platform });
  }
  // As docker prints them (e.g. ports discarded on --network host).
  for (const w of made.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
  return made.Id;
}

/**
 * The foreground half of `run`, in the docker CLI's order: attach, register the wait,
 * start, stream the output, return the exit code. Ctrl-C stops the container (SIGTERM,
 * SIGKILL after 3 s); a second Ctrl-C kills it.
 */
export async function runAttached(ctx: CliContext, id: string, o: { interactive?: boolean; autoRemove?: boolean }): Promise<number> {
  const output = await ctx.containers.attach(id, { stdin: o.interactive ? process.stdin : undefined, stdout: true, stderr: true, stream: true, tty: false });
  const exited = await ctx.containers.waitRegistered(id, o.autoRemove ? 'removed' : 'next-exit');
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts === 1) void ctx.containers.stop(id, { timeout: 3 }).catch(() => undefined);
    else void ctx.containers.kill(id, 'SIGKILL').catch(() => undefined);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await ctx.containers.start(id);
  } catch (e) {
    if (o.autoRemove) await ctx.containers.remove(id, { force: true }).catch(() => undefined);
    runError(e);
  }
  await pumpOutput(output);
  const r = await exited.result;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return r.StatusCode;
}

/**
 * `run -it` and `attach` to a tty container: the terminal session, then the exit code —
 * the container's, or 0 when the user detached and it keeps running.
 */
export async function runTerminalSession(
  ctx: CliContext,
  id: string,
  o: { interactive: boolean; autoRemove?: boolean; detachKeys?: string; start?: boolean },
): Promise<number> {
  const exited = await ctx.containers.waitRegistered(id, o.autoRemove ? 'removed' : 'next-exit');
  let stream: TerminalStream;
  try {
    stream = await attachTerminal(ctx, id, { stdin: o.interactive, detachKeys: o.detachKeys });
  } catch (e) {
    exited.cancel();
    if (o.autoRemove && o.start) await ctx.containers.remove(id, { force: true }).catch(() => undefined);
    runError(e);
  }
  await runTerminal(stream, {
    stdin: o.interactive,
    afterAttach: o.start
      ? () =>
          ctx.containers.start(id).then(
            () => undefined,
            async (e) => {
              stream.socket.destroy();
              if (o.autoRemove) await ctx.containers.remove(id, { force: true }).catch(() => undefined);
              runError(e);
            },
          )
      : undefined,
  });
  if (o.interactive) process.stdin.destroy();
  // The stream ended: the run is over, or the user detached and it runs on.
  const state = await ctx.containers.inspect(id).then((i) => i.State, () => undefined);
  if (state && (state.Status === 'running' || state.Status === 'paused')) {
    exited.cancel(); // detached: it runs on
    return 0;
  }
  return (await exited.result).StatusCode;
}

/** Exit codes like docker run: 125 the daemon refused, 126 not executable, 127 not found. */
export function runError(e: unknown): never {
  const err = e as BerthError & { exitCode?: number };
  if (err instanceof BerthError && !err.exitCode) (err as { exitCode?: number }).exitCode = 125;
  throw err;
}
