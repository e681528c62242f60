#!/usr/bin/env node
import './compile-cache'; // first: the modules below load from V8's cache
import { Command, CommanderError } from 'commander';
import { systemCommands } from './commands/system';
import { imageCommands } from './commands/images';
import { registryCommands } from './commands/registry';
import { buildCommands } from './commands/build';
import { containerCommands } from './commands/containers';
import { volumeCommands } from './commands/volumes';
import { sideCommands } from './commands/side';
import { networkCommands } from './commands/networks';
import { mainJob } from './commands/mainjob';
import { BerthError, toBerthError } from '../../volumes/shared/errors';
import { BERTH_VERSION } from '../version';

/**
 * The berth CLI: a thin client of berthd's API with docker's verbs and flags.
 * Errors print as `berth: <message>` plus a hint, and exit non-zero.
 */
export function buildProgram(verb?: string): Command {
  const program = new Command('berth');
  program
    .description('berth: containers built around data (docker-compatible CLI for berthd)')
    .version(BERTH_VERSION, '-v, --version', 'print the client version')
    .option('-H, --host <host>', 'daemon socket, unix:///PATH (env BERTH_HOST; default unix:///run/berth/berth.sock)')
    .option('--root <dir>', 'data root, used when the daemon is started (env BERTH_ROOT; default /var/lib/berth)')
    .option('--no-autostart', 'do not start a daemon when none answers')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  const into = verb === undefined ? program : onlyVerb(program, verb);
  systemCommands(into);
  containerCommands(into);
  imageCommands(into);
  registryCommands(into);
  buildCommands(into);
  volumeCommands(into);
  sideCommands(into);
  networkCommands(into);
  into.command('main-job', { hidden: true }).description('what `npm start` runs').action(async (_o, cmd: Command) => mainJob(cmd));
  return program;
}

/**
 * Building every command with its options was a third of a call's start-up, and a call runs
 * one. `program` seen through this registers only the top-level command named `verb` (with
 * all its subcommands); every other `command()` gets a stand-in that takes any call and
 * keeps nothing. What commander then does with the argv is what the whole program does: it
 * only ever looks at the command the verb names.
 */
function onlyVerb(program: Command, verb: string): Command {
  const keepsNothing: Command = new Proxy(function () {}, { get: () => keepsNothing, apply: () => keepsNothing }) as unknown as Command;
  return new Proxy(program, {
    get(target, key) {
      if (key === 'command') return (nameAndArgs: string, ...rest: []) => (nameAndArgs.split(' ')[0] === verb ? target.command(nameAndArgs, ...rest) : keepsNothing);
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/**
 * The verb `argv` calls when it is plain: only berth's global options with a value
 * (-H/--host, --root) or --no-autostart before it. Anything else (--help, --version, an
 * unknown option, `help`, an alias, a mistyped verb) gets the whole program.
 */
export function plainVerb(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-H' || a === '--host' || a === '--root') i++;
    else if (a === '--no-autostart' || a.startsWith('--host=') || a.startsWith('--root=') || (a.startsWith('-H') && a.length > 2)) continue;
    else if (a.startsWith('-')) return undefined;
    else return a === 'help' ? undefined : a;
  }
  return undefined;
}

/** The program for `argv`: the verb's command alone when that names one, else all of them. */
function programFor(argv: string[]): Command {
  const verb = plainVerb(argv.slice(2));
  if (verb !== undefined) {
    const one = buildProgram(verb);
    if (one.commands.length) return one;
  }
  return buildProgram();
}

async function main(argv: string[]): Promise<void> {
  const program = programFor(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    fail(e);
  }
}

/** How a call that failed ends: `berth: <message>`, its hint, and a non-zero exit. */
export function fail(e: unknown): never {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  const err: BerthError = toBerthError(e);
  process.stderr.write(`berth: ${err.message}\n`);
  if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  if (process.env.BERTH_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  // `run` sets docker's codes (125 refused, 126 not executable, 127 not found).
  const code = (e as { exitCode?: unknown }).exitCode;
  process.exit(typeof code === 'number' && code > 0 ? code : 1);
}

// for quick.ts, which loads this bundle only when it cannot answer alone
export { responseError } from '../client/transport';

/** Run the CLI on this process's arguments (the bundle's entry, see quick.ts). */
export function run(argv: string[] = process.argv): void {
  // src/cli/berth passes a `--` first so node leaves our flags alone (see there).
  void main(argv[2] === '--' ? [...argv.slice(0, 2), ...argv.slice(3)] : argv);
}

if (require.main === module) run();
