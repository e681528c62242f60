import type { Command } from 'commander';
import { collect, connect, type CliContext } from '../../context';
import { humanSize } from '../../format';
import { parseFilters } from '../../parse';
import { InvalidArgumentError } from '../../../../volumes/shared/errors';
import { both, type Verbs } from '../../verbs';
import { eachRef, pumpOutput } from './output';

/**
 * The verbs that move a container through its life: start, stop, restart, kill, pause,
 * unpause, rm, wait, rename, prune.
 */

/** `start` (with -a: attached, exiting with the container's code). */
export function startVerb(v: Verbs): void {
  for (const c of both(v, 'start <CONTAINER...>')) {
    c.description('start stopped containers')
      .option('-a, --attach', "attach stdout/stderr and exit with the container's exit code")
      .action(async (refs: string[], o: { attach?: boolean }, cmd: Command) => {
        const ctx = await connect(cmd);
        if (o.attach) {
          if (refs.length > 1) throw new InvalidArgumentError('you cannot attach to several containers', { hint: 'start -a one container at a time' });
          const output = await ctx.containers.attach(refs[0], { stdout: true, stderr: true, stream: true });
          const exited = await ctx.containers.waitRegistered(refs[0], 'next-exit');
          await ctx.containers.start(refs[0]);
          await pumpOutput(output);
          process.exitCode = (await exited.result).StatusCode;
          return;
        }
        await eachRef(refs, async (r) => {
          await ctx.containers.start(r);
          process.stdout.write(r + '\n');
        });
      });
  }
}

/** `stop`, `restart`, `kill`, `pause`, `unpause`: one call per container, each name printed. */
export function signalVerbs(v: Verbs): void {
  const simple = (verb: string, desc: string, fn: (ctx: CliContext, ref: string, o: Record<string, string | undefined>) => Promise<void>, opts: Array<[string, string]> = []) => {
    for (const c of both(v, `${verb} <CONTAINER...>`)) {
      c.description(desc);
      for (const [flags, d] of opts) c.option(flags, d);
      c.action(async (refs: string[], o: Record<string, string | undefined>, cmd: Command) => {
        const ctx = await connect(cmd);
        await eachRef(refs, async (r) => {
          await fn(ctx, r, o);
          process.stdout.write(r + '\n');
        });
      });
    }
  };
  simple('stop', 'stop running containers: the stop signal (SIGTERM), then SIGKILL after the timeout', (ctx, r, o) => ctx.containers.stop(r, { timeout: o.time === undefined ? undefined : Number(o.time), signal: o.signal }).then(() => undefined), [
    ['-t, --time <seconds>', 'seconds to wait before killing (default 10)'],
    ['-s, --signal <signal>', 'signal to send instead of the stop signal'],
  ]);
  simple('restart', 'restart containers', (ctx, r, o) => ctx.containers.restart(r, { timeout: o.time === undefined ? undefined : Number(o.time) }), [['-t, --time <seconds>', 'seconds to wait before killing']]);
  simple('kill', 'send a signal to containers (default SIGKILL)', (ctx, r, o) => ctx.containers.kill(r, o.signal ?? 'SIGKILL'), [['-s, --signal <signal>', 'signal to send']]);
  simple('pause', 'freeze all processes of containers', (ctx, r) => ctx.containers.pause(r));
  simple('unpause', 'thaw paused containers', (ctx, r) => ctx.containers.unpause(r));
}

/** `rm`. */
export function rmVerb(v: Verbs): void {
  for (const c of both(v, 'rm <CONTAINER...>', { alias: 'remove' })) {
    c.description('remove containers')
      .option('-f, --force', 'kill a running container first')
      .option('-v, --volumes', 'remove anonymous volumes too')
      .action(async (refs: string[], o: { force?: boolean; volumes?: boolean }, cmd: Command) => {
        const ctx = await connect(cmd);
        await eachRef(refs, async (r) => {
          await ctx.containers.remove(r, o);
          process.stdout.write(r + '\n');
        });
      });
  }
}

/** `wait`: each exit code. */
export function waitVerb(v: Verbs): void {
  for (const c of both(v, 'wait <CONTAINER...>')) {
    c.description('block until containers stop, then print their exit codes').action(async (refs: string[], _o, cmd: Command) => {
      const ctx = await connect(cmd);
      await eachRef(refs, async (r) => {
        process.stdout.write((await ctx.containers.wait(r, 'not-running')).StatusCode + '\n');
      });
    });
  }
}

/** `rename`. */
export function renameVerb(v: Verbs): void {
  for (const c of both(v, 'rename <CONTAINER> <NEW_NAME>')) {
    c.description('rename a container').action(async (ref: string, name: string, _o, cmd: Command) => {
      const ctx = await connect(cmd);
      await ctx.containers.rename(ref, name);
    });
  }
}

/** `container prune`. */
export function pruneVerb(v: Verbs): void {
  v.group
    .command('prune')
    .description('remove all stopped containers')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <k=v>', 'filter: until=24h, label=k=v', collect)
    .action(async (o: { filter?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const r = await ctx.containers.prune(parseFilters(o.filter));
      if (r.ContainersDeleted?.length) process.stdout.write('Deleted Containers:\n' + r.ContainersDeleted.join('\n') + '\n\n');
      process.stdout.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
    });
}
