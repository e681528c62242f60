import type { Command } from 'commander';
import { collect, connect } from '../../context';
import { expandEnv } from '../../parse';
import { runTerminal, windowSize } from '../../terminal';
import { both, type Verbs } from '../../verbs';

/** `exec`: a command in a running container; -it an interactive one with a terminal. */
export function execVerb(v: Verbs): void {
  for (const c of both(v, 'exec <CONTAINER> <COMMAND...>')) {
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
}
