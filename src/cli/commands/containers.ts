import { Command } from 'commander';
import type { Verbs } from '../verbs';
import { execVerb } from './container/exec';
import { commitVerb, exportVerb } from './container/filesystem';
import { pruneVerb, renameVerb, rmVerb, signalVerbs, startVerb, waitVerb } from './container/lifecycle';
import { inspectVerbs, logsVerb, portVerb, psVerb, topVerb } from './container/reads';
import { attachVerb, createVerb, runVerb } from './container/run';

export { createBody, networkFields, parseMount } from '../create-flags';

/**
 * The container verbs, each at the top (`berth ps`) and under `berth container`. The
 * verbs live in container/ by group: run.ts (attach, run, create) with session.ts (the
 * client side of a run), lifecycle.ts (start … prune), reads.ts (ps, logs, port, top,
 * inspect), exec.ts, filesystem.ts (commit, export). They are registered here in the
 * order `--help` lists them.
 */
export function containerCommands(program: Command): void {
  const v: Verbs = { program, group: program.command('container').description('manage containers') };
  attachVerb(v);
  runVerb(v);
  createVerb(v);
  startVerb(v);
  signalVerbs(v);
  rmVerb(v);
  psVerb(v);
  logsVerb(v);
  waitVerb(v);
  execVerb(v);
  portVerb(v);
  renameVerb(v);
  topVerb(v);
  commitVerb(v);
  exportVerb(v);
  pruneVerb(v);
  inspectVerbs(v);
}
