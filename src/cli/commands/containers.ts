import { Command } from 'commander';
import { collect, connect, CliContext } from '../context';
import { ago, formatItems, humanSize, shortId, table } from '../format';
import { expandEnv, parseFilters } from '../parse';
import { writeArchive } from '../progress';
import { ConflictError, InvalidArgumentError, NotFoundError, BerthError } from '../../../volumes/shared/errors';
import { attachTerminal, runTerminal, windowSize, type TerminalStream } from '../terminal';
import type { ContainerSummary, CreateBody, OutputChunk } from '../../engine/service';
import { formatPortLines, formatPortsSummary, type PortBinding, type PortSummary } from '../../network/port-spec';
import { createBody, createOptions, type CreateFlags } from '../create-flags';

export { createBody, networkFields, parseMount } from '../create-flags';

export async function createContainer(ctx: CliContext, body: CreateBody, name?: string): Promise<string> {
  let made: { Id: string; Warnings: string[] };
  try {
    made = await ctx.containers.create(body, name);
  } catch (e) {
    if (!(e instanceof NotFoundError) || !/image/i.test(e.message)) throw e;
    process.stderr.write(`Unable to find image '${body.Image}' locally\n`);
    await ctx.images.resolve(body.Image);
    made = await ctx.containers.create(body, name);
  }
  // As docker prints them (e.g. ports discarded on --network host).
  for (const w of made.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
  return made.Id;
}

async function pumpOutput(out: AsyncIterable<OutputChunk>): Promise<void> {
  for await (const c of out) {
    const dest = c.stream === 'stderr' ? process.stderr : process.stdout;
    if (!dest.write(c.data)) await new Promise((r) => dest.once('drain', r));
  }
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

/** HostConfig.ConsoleSize ([rows, cols]) from our terminal, when it knows its size. */
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
function runError(e: unknown): never {
  const err = e as BerthError & { exitCode?: number };
  if (err instanceof BerthError && !err.exitCode) (err as { exitCode?: number }).exitCode = 125;
  throw err;
}

export function containerCommands(program: Command): void {
  const container = program.command('container').description('manage containers');

  for (const c of [program.command('attach <CONTAINER>'), container.command('attach <CONTAINER>')]) {
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

  createOptions(program.command('run <IMAGE> [COMMAND...]'))
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
      const id = await createContainer(ctx, body, o.name).catch(runError);
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

  for (const c of [program.command('create <IMAGE> [COMMAND...]'), container.command('create <IMAGE> [COMMAND...]')]) {
    createOptions(c)
      .description('create a container without starting it')
      .passThroughOptions()
      .action(async (image: string, args: string[], o: CreateFlags, cmd: Command) => {
        const body = createBody(image, args, { ...o, detach: true });
        const ctx = await connect(cmd);
        process.stdout.write((await createContainer(ctx, body, o.name)) + '\n');
      });
  }

  for (const c of [program.command('start <CONTAINER...>'), container.command('start <CONTAINER...>')]) {
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

  const simple = (verb: string, desc: string, fn: (ctx: CliContext, ref: string, o: Record<string, string | undefined>) => Promise<void>, opts: Array<[string, string]> = []) => {
    for (const c of [program.command(`${verb} <CONTAINER...>`), container.command(`${verb} <CONTAINER...>`)]) {
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

  for (const c of [program.command('rm <CONTAINER...>'), container.command('rm <CONTAINER...>').alias('remove')]) {
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

  for (const c of [program.command('ps'), container.command('ls').alias('list')]) {
    c.description('list containers (running ones unless -a)')
      .option('-a, --all', 'show all containers')
      .option('-q, --quiet', 'only show ids')
      .option('-n, --last <n>', 'show the n last created')
      .option('-l, --latest', 'show the latest created')
      .option('-s, --size', 'show sizes')
      .option('--no-trunc', "don't truncate output")
      .option('-f, --filter <k=v>', 'filter: status=exited, name=web, label=k=v, ancestor=busybox, exited=0, health=healthy', collect)
      .option('--format <format>', "'json' or a Go-style template, e.g. '{{.ID}} {{.Names}}'")
      .action(async (o: { all?: boolean; quiet?: boolean; last?: string; latest?: boolean; size?: boolean; trunc?: boolean; filter?: string[]; format?: string }, cmd: Command) => {
        const ctx = await connect(cmd);
        const filters = parseFilters(o.filter);
        const limit = o.latest ? 1 : o.last ? Number(o.last) : undefined;
        const list = await ctx.containers.list({ all: o.all || limit !== undefined, limit, size: o.size, filters });
        const rows = list.map((c) => psRow(c, o.trunc !== false));
        if (o.quiet) return void process.stdout.write(rows.map((r) => r.ID + '\n').join(''));
        if (o.format) return void process.stdout.write(formatItems(o.format, rows));
        process.stdout.write(
          table(
            ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES', ...(o.size ? ['SIZE'] : [])],
            rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names, ...(o.size ? [r.Size] : [])]),
          ),
        );
      });
  }

  for (const c of [program.command('logs <CONTAINER>'), container.command('logs <CONTAINER>')]) {
    c.description("show a container's output (kept on disk, across daemon restarts)")
      .option('-f, --follow', 'follow the output until the container stops')
      .option('-n, --tail <n>', 'number of lines from the end (default all)')
      .option('-t, --timestamps', 'show timestamps')
      .option('--since <time>', 'since a time (RFC 3339 or unix seconds) or a duration ago (10m)')
      .option('--until <time>', 'until a time or a duration ago')
      .action(async (ref: string, o: { follow?: boolean; tail?: string; timestamps?: boolean; since?: string; until?: string }, cmd: Command) => {
        const ctx = await connect(cmd);
        const tail = o.tail === undefined || o.tail === 'all' ? undefined : Number(o.tail);
        if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new InvalidArgumentError(`invalid --tail ${o.tail}`, { hint: 'give a whole number or all' });
        const ac = new AbortController();
        process.on('SIGINT', () => {
          ac.abort();
          process.exit(0);
        });
        await pumpOutput(ctx.containers.logs(ref, { follow: o.follow, tail, timestamps: o.timestamps, since: parseTime(o.since), until: parseTime(o.until), signal: ac.signal }));
      });
  }

  for (const c of [program.command('wait <CONTAINER...>'), container.command('wait <CONTAINER...>')]) {
    c.description('block until containers stop, then print their exit codes').action(async (refs: string[], _o, cmd: Command) => {
      const ctx = await connect(cmd);
      await eachRef(refs, async (r) => {
        process.stdout.write((await ctx.containers.wait(r, 'not-running')).StatusCode + '\n');
      });
    });
  }

  for (const c of [program.command('exec <CONTAINER> <COMMAND...>'), container.command('exec <CONTAINER> <COMMAND...>')]) {
    c.description('run a command in a running container; -it for an interactive one with a terminal')
      .option('-d, --detach', 'run it in the background')
      .option('-e, --env <KEY=VALUE>', 'set an environment variable', collect)
      .option('-w, --workdir <dir>', 'working directory')
      .option('-u, --user <user>', 'user to run as')
      .option('-i, --interactive', 'attach stdin')
      .option('-t, --tty', 'give the process a terminal (a pty); with -i, an interactive session')
      .option('--privileged', 'give the process every capability')
      .addHelpText('after', '\nExamples:\n  berth exec cache redis-cli info\n  berth exec -it cache sh        an interactive shell in the running container')
      .passThroughOptions()
      .action(async (ref: string, args: string[], o: { detach?: boolean; env?: string[]; workdir?: string; user?: string; interactive?: boolean; tty?: boolean; privileged?: boolean }, cmd: Command) => {
        const ctx = await connect(cmd);
        const { rows, cols } = windowSize();
        const { Id } = await ctx.containers.execCreate(ref, {
          Tty: !!o.tty,
          ...(o.tty && rows && cols ? { ConsoleSize: [rows, cols] as [number, number] } : {}),
          Cmd: args,
          Env: (o.env ?? []).map(expandEnv).filter((e): e is string => !!e),
          WorkingDir: o.workdir,
          User: o.user,
          AttachStdin: !!o.interactive,
          AttachStdout: !o.detach,
          AttachStderr: !o.detach,
          Privileged: !!o.privileged,
        });
        if (o.detach) {
          await ctx.transport.json('POST', `/exec/${Id}/start`, { body: { Detach: true } });
          return;
        }
        if (o.tty) {
          const socket = await ctx.transport.hijack('POST', `/exec/${Id}/start`, { body: { Detach: false, Tty: true } });
          const resize = async (r: number, c: number) => void (await ctx.transport.request("POST", `/exec/${Id}/resize`, { query: { h: r, w: c } })).resume();
          await runTerminal({ socket, resize }, { stdin: !!o.interactive });
          if (o.interactive) process.stdin.destroy();
          let info = await ctx.containers.execInspect(Id);
          for (let i = 0; i < 100 && info.Running; i++) {
            await new Promise((r) => setTimeout(r, 20));
            info = await ctx.containers.execInspect(Id);
          }
          process.exitCode = info.ExitCode ?? 0;
          return;
        }
        process.exitCode = await ctx.containers.execStart(Id, { stdin: o.interactive ? process.stdin : undefined, stdout: process.stdout, stderr: process.stderr });
        if (o.interactive) process.stdin.destroy();
      });
  }

  for (const c of [program.command('port <CONTAINER> [PRIVATE_PORT]'), container.command('port <CONTAINER> [PRIVATE_PORT]')]) {
    c.description("list a container's published ports, or the host addresses of one (PRIVATE_PORT[/tcp|/udp])")
      .addHelpText('after', '\nExamples:\n  berth port cache            6379/tcp -> 0.0.0.0:32768\n  berth port cache 6379       0.0.0.0:32768\n  berth port dns 53/udp')
      .action(async (ref: string, port: string | undefined, _o, cmd: Command) => {
        const ctx = await connect(cmd);
        const info = await ctx.containers.inspect(ref);
        const ports = (info.NetworkSettings?.Ports ?? null) as Record<string, PortBinding[] | null> | null;
        const lines = formatPortLines(ports, port);
        if (port !== undefined && !lines.length) {
          throw new NotFoundError(`No public port '${port}' published for ${ref}`, { hint: `publish it when creating the container (berth run -p HOST_PORT:${port} ...); \`berth port ${ref}\` lists what is published` });
        }
        process.stdout.write(lines.map((l) => l + '\n').join(''));
      });
  }

  for (const c of [program.command('rename <CONTAINER> <NEW_NAME>'), container.command('rename <CONTAINER> <NEW_NAME>')]) {
    c.description('rename a container').action(async (ref: string, name: string, _o, cmd: Command) => {
      const ctx = await connect(cmd);
      await ctx.containers.rename(ref, name);
    });
  }

  for (const c of [program.command('top <CONTAINER> [PS_ARGS...]'), container.command('top <CONTAINER> [PS_ARGS...]')]) {
    c.description("show a container's processes").action(async (ref: string, psArgs: string[], _o, cmd: Command) => {
      const ctx = await connect(cmd);
      const t = await ctx.containers.top(ref, psArgs.length ? psArgs.join(' ') : undefined);
      process.stdout.write(table(t.Titles, t.Processes));
    });
  }

  for (const c of [program.command('commit <CONTAINER> [REPOSITORY]'), container.command('commit <CONTAINER> [REPOSITORY]')]) {
    c.description("make a new image from a container's changes")
      .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENV, ...)', collect)
      .option('-m, --message <text>', 'commit message')
      .option('-a, --author <name>', 'author')
      .option('-p, --pause', 'pause the container while committing (default)', true)
      .option('--no-pause', 'do not pause the container')
      .action(async (ref: string, repo: string | undefined, o: { change?: string[]; message?: string; author?: string; pause: boolean }, cmd: Command) => {
        const ctx = await connect(cmd);
        let r: string | undefined;
        let tag: string | undefined;
        if (repo) {
          const slash = repo.lastIndexOf('/');
          const colon = repo.lastIndexOf(':');
          [r, tag] = colon > slash ? [repo.slice(0, colon), repo.slice(colon + 1)] : [repo, undefined];
        }
        const out = await ctx.containers.commit(ref, { repo: r, tag, changes: o.change, comment: o.message, author: o.author, pause: o.pause });
        process.stdout.write(out.Id + '\n');
      });
  }

  for (const c of [program.command('export <CONTAINER>'), container.command('export <CONTAINER>')]) {
    c.description("write a container's filesystem as a tar archive")
      .option('-o, --output <file>', 'write to a file instead of standard output')
      .action(async (ref: string, o: { output?: string }, cmd: Command) => {
        const ctx = await connect(cmd);
        await writeArchive('Exporting', o.output, (out) => ctx.containers.export(ref, out));
      });
  }

  container
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

  container
    .command('inspect <CONTAINER...>')
    .description('show low-level information about containers as JSON')
    .option('-f, --format <format>', "'json' or a Go-style template, e.g. '{{.State.Status}}'")
    .action(async (refs: string[], o: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const out = [];
      for (const r of refs) out.push(await ctx.containers.inspect(r));
      printInspect(out, o.format);
    });

  program
    .command('inspect <NAME...>')
    .description('show low-level information about containers or images as JSON')
    .option('-f, --format <format>', "'json' or a Go-style template, e.g. '{{.State.Status}}'")
    .option('--type <type>', 'container or image')
    .action(async (refs: string[], o: { format?: string; type?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const out: object[] = [];
      for (const r of refs) {
        if (o.type !== 'image') {
          try {
            out.push(await ctx.containers.inspect(r));
            continue;
          } catch (e) {
            if (!(e instanceof NotFoundError) || o.type === 'container') throw e;
          }
        }
        try {
          out.push(await ctx.images.inspect(r));
        } catch (e) {
          if (e instanceof NotFoundError) throw new NotFoundError(`no such object: ${r}`, { hint: 'list containers with `berth ps -a` and images with `berth images`' });
          throw e;
        }
      }
      printInspect(out, o.format);
    });
}

function printInspect(out: object[], format?: string): void {
  if (format && format !== 'json') return void process.stdout.write(formatItems(format, out));
  process.stdout.write(JSON.stringify(out, null, 4) + '\n');
}

/** Like docker: act on every argument, report each failure, fail at the end. */
async function eachRef(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed: unknown;
  for (const r of refs) {
    try {
      await fn(r);
    } catch (e) {
      failed = e;
      process.stderr.write(`berth: ${(e as Error).message}\n`);
    }
  }
  if (failed) throw failed;
}

function psRow(c: ContainerSummary, trunc: boolean) {
  const cmd = c.Command ?? '';
  return {
    ID: trunc ? shortId(c.Id) : c.Id,
    Image: c.Image,
    Command: trunc && cmd.length > 20 ? JSON.stringify(cmd.slice(0, 19) + '…') : JSON.stringify(cmd),
    CreatedAt: new Date(c.Created * 1000).toISOString(),
    RunningFor: ago(c.Created),
    Status: c.Status,
    State: c.State,
    Ports: formatPortsSummary((c.Ports ?? []) as PortSummary[]),
    Names: (c.Names ?? []).map((n) => n.replace(/^\//, '')).join(','),
    Labels: Object.entries(c.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
    Size: c.SizeRw !== undefined ? humanSize(c.SizeRw) : '',
  };
}

/** `--since`/`--until`: unix seconds, RFC 3339, or a duration ago (10s, 5m, 2h). */
function parseTime(v?: string): number | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return Date.now() / 1000 - Number(d[1]) * { s: 1, m: 60, h: 3600 }[d[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`invalid time ${JSON.stringify(v)}`, { hint: 'use unix seconds, RFC 3339, or a duration like 10m' });
  return t / 1000;
}

