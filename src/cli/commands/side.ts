import type { Command } from 'commander';
import { cpCommand } from './cp';

/** The verbs of the side modules (cp, stats, update, diff, system df/prune), under `berth` and `berth container`. */
export function sideCommands(program: Command): void {
  const container = program.commands.find((c) => c.name() === 'container');
  if (!container) throw new Error('sideCommands needs the container command registered first');
  cpCommand(program, container);
}
