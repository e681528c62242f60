import type { Command } from 'commander';
import { collect, connect } from '../../context';
import { ago, formatItems, humanSize, shortId, table } from '../../format';
import { parseFilters } from '../../parse';
import { InvalidArgumentError, NotFoundError } from '../../../../volumes/shared/errors';
import type { ContainerSummary } from '../../../engine/service';
import { formatPortLines, formatPortsSummary, type PortBinding, type PortSummary } from '../../../network/port-spec';
import { both, type Verbs } from '../../verbs';
import { printInspect, pumpOutput } from './output';

/** The verbs that read containers: `ps`, `logs`, `port`, `top`, `inspect`. */

/** `ps` (`container ls`). */
export function psVerb(v: Verbs): void {
  for (const c of both(v, 'ps', { as: 'ls', alias: 'list' })) {
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
}

/** `logs`. */
export function logsVerb(v: Verbs): void {
  for (const c of both(v, 'logs <CONTAINER>')) {
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
        await pumpOutput(ctx.containers.logs(ref, { follow: o.follow, tail, timestamps: o.timestamps, since: parseTime('--since', o.since), until: parseTime('--until', o.until), signal: ac.signal }));
      });
  }
}

/** `port`. */
export function portVerb(v: Verbs): void {
  for (const c of both(v, 'port <CONTAINER> [PRIVATE_PORT]')) {
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
}

/** `top`. */
export function topVerb(v: Verbs): void {
  for (const c of both(v, 'top <CONTAINER> [PS_ARGS...]')) {
    c.description("show a container's processes").action(async (ref: string, psArgs: string[], _o, cmd: Command) => {
      const ctx = await connect(cmd);
      const t = await ctx.containers.top(ref, psArgs.length ? psArgs.join(' ') : undefined);
      process.stdout.write(table(t.Titles, t.Processes));
    });
  }
}

/** `container inspect`, and `inspect` of a container or an image. */
export function inspectVerbs(v: Verbs): void {
  v.group
    .command('inspect <CONTAINER...>')
    .description('show low-level information about containers as JSON')
    .option('-f, --format <format>', "'json' or a Go-style template, e.g. '{{.State.Status}}'")
    .action(async (refs: string[], o: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const out = [];
      for (const r of refs) out.push(await ctx.containers.inspect(r));
      printInspect(out, o.format);
    });

  v.program
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
function parseTime(flag: string, v?: string): number | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return Date.now() / 1000 - Number(d[1]) * { s: 1, m: 60, h: 3600 }[d[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`${flag}: invalid time ${JSON.stringify(v)}`, { hint: 'use unix seconds, RFC 3339, or a duration like 10m' });
  return t / 1000;
}
