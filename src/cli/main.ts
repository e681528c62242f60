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
export function buildProgram(): Command {
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
  systemCommands(program);
  containerCommands(program);
  imageCommands(program);
  registryCommands(program);
  buildCommands(program);
  volumeCommands(program);
  sideCommands(program);
  networkCommands(program);
  program.command('main-job', { hidden: true }).description('what `npm start` runs').action(async (_o, cmd: Command) => mainJob(cmd));
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode);
    const err: BerthError = toBerthError(e);
    process.stderr.write(`berth: ${err.message}\n`);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    if (process.env.BERTH_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    // `run` sets docker's codes (125 refused, 126 not executable, 127 not found).
    const code = (e as { exitCode?: unknown }).exitCode;
    process.exit(typeof code === 'number' && code > 0 ? code : 1);
  }
}

// src/cli/berth passes a `--` first so node leaves our flags alone (see there).
if (require.main === module) void main(process.argv[2] === '--' ? [...process.argv.slice(0, 2), ...process.argv.slice(3)] : process.argv);
