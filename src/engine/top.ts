import { InternalError, InvalidArgumentError } from '../../volumes/shared/errors';
import { tool, ToolError } from '../../volumes/shared/host-tool';

/**
 * `docker top`: the container's pids from the runtime (`runc ps --format json`), then the
 * host's ps(1) over them. The default columns are those of `ps -ef`, Docker's default;
 * custom ps arguments run ps as given and keep the rows whose PID is the container's.
 */

export interface TopResult {
  Titles: string[];
  Processes: string[][];
}

/** Host pids of every process in the container. */
export async function containerPids(runtime: { path: string; root: string }, id: string): Promise<number[]> {
  const out = await tool(runtime.path, ['--root', runtime.root, 'ps', '--format', 'json', id]).catch((e: Error) => {
    if (!(e instanceof ToolError)) throw e;
    throw new InternalError(`cannot list the processes of ${id}: ${e.stderr.trim() || e.message}`, { hint: 'check that the container is running', cause: e });
  });
  return ((JSON.parse(out) as number[] | null) ?? []).filter((n) => Number.isInteger(n));
}

/** ps output as Docker parses it: titles from the first line, the last column takes the rest. */
export function parsePs(out: string): TopResult {
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const Titles = (lines.shift() ?? '').trim().split(/\s+/);
  const Processes = lines.map((l) => {
    const f = l.trim().split(/\s+/);
    if (f.length > Titles.length) f.splice(Titles.length - 1, f.length, f.slice(Titles.length - 1).join(' '));
    return f;
  });
  return { Titles, Processes };
}

export async function top(runtime: { path: string; root: string }, id: string, psArgs?: string): Promise<TopResult> {
  const pids = await containerPids(runtime, id);
  const args = (psArgs ?? '').trim();
  if (args === '' || args === '-ef') {
    const cols = ['-o', 'user=UID', '-o', 'pid,ppid,c,stime', '-o', 'tty=TTY', '-o', 'time,cmd'];
    if (pids.length === 0) return { Titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'], Processes: [] };
    // ps exits 1 when some pid went away meanwhile; what it printed is still right.
    const out = await tool('ps', [...cols, '-p', pids.join(',')]).catch((e: Error) => {
      if (e instanceof ToolError) return e.stdout;
      throw e;
    });
    return parsePs(out);
  }
  if (/[;&|`$<>]/.test(args)) {
    throw new InvalidArgumentError(`invalid ps arguments ${JSON.stringify(args)}`, { hint: 'give ps options only, e.g. aux or -o pid,comm' });
  }
  const out = await tool('ps', args.split(/\s+/)).catch((e: Error) => {
    if (!(e instanceof ToolError)) throw e;
    throw new InvalidArgumentError(`ps ${args} failed: ${e.stderr.trim() || e.message}`, { hint: 'give options the host ps(1) understands', cause: e });
  });
  const all = parsePs(out);
  const col = all.Titles.indexOf('PID');
  if (col < 0) throw new InvalidArgumentError("Couldn't find PID field in ps output", { hint: 'include the pid column, e.g. -o pid,comm' });
  const want = new Set(pids.map(String));
  return { Titles: all.Titles, Processes: all.Processes.filter((p) => want.has(p[col])) };
}
