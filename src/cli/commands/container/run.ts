import type { Command } from 'commander';
import { connect } from '../../context';
import { ConflictError } from '../../../../volumes/shared/errors';
import type { CreateBody } from '../../../engine/service';
import { createBody, createOptions, type CreateFlags } from '../../create-flags';
import { both, type Verbs } from '../../verbs';
import { pumpOutput } from './output';
import { createContainer, runAttached, runError, runTerminalSession } from './session';

/** The verbs that make a container or join its run: `attach`, `run`, `create`. */

/** `attach`: to a tty container, its terminal; else its output (and stdin). */
export function attachVerb(v: Verbs): void {
  for (const c of both(v, 'attach <CONTAINER>')) {
    c.description("attach your terminal to a running container's input and output (a tty container: its screen, redrawn)")
      .option('--no-stdin', 'do not attach stdin (watch only)')
      .option('--detach-keys <keys>', 'the keys that detach, e.g. ctrl-a,d (default ctrl-p,ctrl-q)')
      .addHelpText('after', '\nExamples:\n  berth run -dit --name box busybox sh   then   berth attach box   (detach: ctrl-p ctrl-q)\n  berth attach --no-stdin box            watch without typing\n\nSeveral clients may attach at once: all see the same screen and may all type.')
      .action(async (ref: string, o: { stdin: boolean; detachKeys?: string }, cmd: Command) => {
        const ctx = await connect(cmd);
        const info = await ctx.containers.inspect(ref);
        if (info.State.Status !== 'running' && info.State.Status !== 'paused') {
          throw new ConflictError('You cannot attach to a stopped container, start it first', { hint: `berth start ${ref}` });
        }
        if (info.Config.Tty) {
          process.exitCode = await runTerminalSession(ctx, info.Id, { interactive: o.stdin && !!info.Config.OpenStdin, detachKeys: o.detachKeys });
          return;
        }
        const exited = await ctx.containers.waitRegistered(info.Id, 'next-exit');
        const output = await ctx.containers.attach(info.Id, { stdin: o.stdin && info.Config.OpenStdin ? process.stdin : undefined, stream: true, tty: false });
        await pumpOutput(output);
        process.exitCode = (await exited.result).StatusCode;
        if (o.stdin) process.stdin.destroy();
      });
  }
}

/** `run`: create and start; without -d, stream its output and exit with its code. */
export function runVerb(v: Verbs): void {
  createOptions(v.program.command('run <IMAGE> [COMMAND...]'))
    .description('create and start a container; without -d, stream its output and exit with its exit code')
    .option('-d, --detach', 'run in the background and print the container id')
    .option('--dry-run', 'print the iptables rules berthd would add for this container\'s network, and create nothing')
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExamples:\n  berth run --rm busybox echo hi\n  berth run -d --name cache --restart always -m 256m redis\n  echo data | berth run -i --rm busybox wc -c\n' +
        '  berth run -d -p 8080:80 nginx                 host port 8080 on every address -> container port 80\n' +
        '  berth run -d -p 127.0.0.1::6379 redis         localhost only, a random free host port (see `berth port`)\n' +
        '  berth run -d -p 6379 redis                    every address, a random free host port\n' +
        '  berth run -d -p 5353:53/udp dnsmasq           udp (tcp when no protocol is given)\n' +
        '  berth run --dry-run -p 8080:80 nginx          show the iptables rules, create nothing\n' +
        '\nCtrl-C stops a foreground container (SIGTERM, then SIGKILL after 3 s); a second Ctrl-C kills it.',
    )
    .action(async (image: string, args: string[], o: CreateFlags & { dryRun?: boolean }, cmd: Command) => {
      let body: CreateBody;
      try {
        body = createBody(image, args, o);
      } catch (e) {
        runError(e);
      }
      const ctx = await connect(cmd);
      if (o.dryRun) {
        const plan = await ctx.containers.networkPlan(body).catch(runError);
        for (const w of plan.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
        process.stdout.write((plan.Rules ?? []).map((r) => r + '\n').join(''));
        return;
      }
      const id = await createContainer(ctx, body, o.name, o).catch(runError);
      if (o.detach) {
        await ctx.containers.start(id).catch(runError);
        process.stdout.write(id + '\n');
        return;
      }
      if (o.tty) {
        process.exitCode = await runTerminalSession(ctx, id, { interactive: !!o.interactive, autoRemove: !!o.rm, detachKeys: o.detachKeys, start: true });
        return;
      }
      process.exitCode = await runAttached(ctx, id, { interactive: o.interactive, autoRemove: o.rm });
      if (o.interactive) process.stdin.destroy();
    });
}

/** `create`: a container, not started. */
export function createVerb(v: Verbs): void {
  for (const c of both(v, 'create <IMAGE> [COMMAND...]')) {
    createOptions(c)
      .description('create a container without starting it')
      .passThroughOptions()
      .action(async (image: string, args: string[], o: CreateFlags, cmd: Command) => {
        const body = createBody(image, args, o); // as docker create: -i sets AttachStdin and StdinOnce, as run without -d does
        const ctx = await connect(cmd);
        process.stdout.write((await createContainer(ctx, body, o.name, o)) + '\n');
      });
  }
}
