import type { Command } from 'commander';

/**
 * Where a docker verb lives: at the top (`berth ps`) and under its management command
 * (`berth container ls`), as the docker CLI has both.
 */
export interface Verbs {
  program: Command;
  /** The management command, e.g. `berth container`. */
  group: Command;
}

/**
 * The command `usage` twice: top-level, and under the group — spelled `as` there when the
 * group names it differently (`ps` is `container ls`), with `alias` as a second name
 * there (`container list`). Give both the same options and action.
 */
export function both(v: Verbs, usage: string, under: { as?: string; alias?: string } = {}): [Command, Command] {
  const sub = v.group.command(under.as ?? usage);
  if (under.alias) sub.alias(under.alias);
  return [v.program.command(usage), sub];
}
