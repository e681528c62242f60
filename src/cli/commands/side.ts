import type { Command } from 'commander';
import { collect, connect, type CliContext } from '../context';
import { humanSize, shortId, table } from '../format';
import { parseBytes, parseCpus, parseFilters, parseRestart } from '../parse';
import { cpCommand } from './cp';
import { poolText } from './volumes';
import { RemoteContainerTools } from '../../client/container-tools';
import type { StatsSample } from '../../engine/stats';
import type { UpdateBody } from '../../engine/update';
import { InvalidArgumentError } from '../../../volumes/shared/errors';

/** The verbs of the side modules (cp, stats, update, diff, system df/prune, image prune), under `berth` and its groups. */
export function sideCommands(program: Command): void {
  const group = (name: string, description: string) => program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
  const container = group('container', 'manage containers');
  const image = group('image', 'manage images');
  const system = group('system', 'manage berth');
  cpCommand(program, container);

  for (const c of [program.command('stats [CONTAINER...]'), container.command('stats [CONTAINER...]')]) {
    c.description("live resource usage of containers (CPU, memory, network, block I/O, pids), from their cgroups")
      .option('-a, --all', 'all containers (default: the running ones)')
      .option('--no-stream', 'print one sample and exit')
      .option('--no-trunc', 'do not truncate ids')
      .action(async (refs: string[], o: { all?: boolean; stream: boolean; trunc: boolean }, cmd: Command) => {
        const ctx = await connect(cmd);
        const tools = new RemoteContainerTools(ctx.transport);
        const names = refs.length ? refs : (await ctx.containers.list({ all: !!o.all })).map((s) => s.Id);
        if (!o.stream) {
          const samples = await Promise.all(names.map((r) => tools.stats(r)));
          process.stdout.write(statsTable(samples, o.trunc));
          return;
        }
        const latest = new Map<string, StatsSample>();
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        const draw = setInterval(() => process.stdout.write('\x1b[2J\x1b[H' + statsTable(names.map((n) => latest.get(n)).filter((s): s is StatsSample => !!s), o.trunc)), 1000);
        try {
          await Promise.all(names.map(async (n) => {
            for await (const s of tools.streamStats(n, ac.signal)) latest.set(n, s);
          }));
        } finally {
          clearInterval(draw);
        }
      });
  }

  for (const c of [program.command('update <CONTAINER...>'), container.command('update <CONTAINER...>')]) {
    c.description('change the resource limits or restart policy of containers, live')
      .option('-m, --memory <bytes>', 'memory limit (e.g. 512m)')
      .option('--memory-swap <bytes>', 'memory plus swap (-1: unlimited swap)')
      .option('--cpus <n>', 'number of CPUs (e.g. 1.5)')
      .option('--cpu-quota <us>', 'CFS quota in microseconds per period')
      .option('--cpu-period <us>', 'CFS period in microseconds')
      .option('--pids-limit <n>', 'maximum number of processes (-1 unlimited)')
      .option('--restart <policy>', 'no, always, unless-stopped, on-failure[:N]')
      .action(async (refs: string[], o: { memory?: string; memorySwap?: string; cpus?: string; cpuQuota?: string; cpuPeriod?: string; pidsLimit?: string; restart?: string }, cmd: Command) => {
        const body: UpdateBody = {};
        if (o.memory) body.Memory = parseBytes(o.memory);
        if (o.memorySwap) body.MemorySwap = o.memorySwap === '-1' ? -1 : parseBytes(o.memorySwap, '--memory-swap');
        if (o.cpus) body.NanoCpus = parseCpus(o.cpus);
        if (o.cpuQuota) body.CpuQuota = int(o.cpuQuota, '--cpu-quota');
        if (o.cpuPeriod) body.CpuPeriod = int(o.cpuPeriod, '--cpu-period');
        if (o.pidsLimit) body.PidsLimit = int(o.pidsLimit, '--pids-limit');
        if (o.restart) body.RestartPolicy = parseRestart(o.restart);
        if (Object.keys(body).length === 0) throw new InvalidArgumentError('you must provide one or more flags when using this command', { hint: 'e.g. berth update --memory 256m CONTAINER' });
        const ctx = await connect(cmd);
        const tools = new RemoteContainerTools(ctx.transport);
        for (const r of refs) {
          await tools.update(r, body);
          process.stdout.write(r + '\n');
        }
      });
  }

  for (const c of [program.command('diff <CONTAINER>'), container.command('diff <CONTAINER>')]) {
    c.description("files changed in a container's filesystem since it was made (A added, C changed, D deleted)").action(async (ref: string, _o: unknown, cmd: Command) => {
      const ctx = await connect(cmd);
      for (const ch of (await new RemoteContainerTools(ctx.transport).changes(ref)) ?? []) process.stdout.write(`${'CAD'[ch.Kind]} ${ch.Path}\n`);
    });
  }

  system
    .command('df')
    .description('disk space used by images, containers and volumes')
    .option('-v, --verbose', 'show each image, container and volume')
    .action(async (o: { verbose?: boolean }, cmd: Command) => {
      const ctx = await connect(cmd);
      process.stdout.write(await dfText(ctx, !!o.verbose));
    });

  system
    .command('prune')
    .description('remove stopped containers, dangling images (all unused with -a) and, with --volumes, unused anonymous volumes')
    .option('-a, --all', 'remove every image no container uses, not just dangling ones')
    .option('--volumes', 'prune anonymous volumes too')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <k=v>', 'filter: until=24h, label=k=v', collect)
    .action(async (o: { all?: boolean; volumes?: boolean; filter?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const filters = parseFilters(o.filter);
      let total = 0;
      const c = await ctx.containers.prune(filters);
      total += c.SpaceReclaimed;
      if (c.ContainersDeleted?.length) process.stdout.write('Deleted Containers:\n' + c.ContainersDeleted.join('\n') + '\n\n');
      if (o.volumes) {
        const v = await ctx.volumes.prune(filters.label ? { label: filters.label } : {});
        total += v.SpaceReclaimed;
        if (v.VolumesDeleted?.length) process.stdout.write('Deleted Volumes:\n' + v.VolumesDeleted.join('\n') + '\n\n');
      }
      const i = await new RemoteContainerTools(ctx.transport).pruneImages({ ...filters, dangling: [o.all ? 'false' : 'true'] });
      total += i.SpaceReclaimed;
      printDeleted(i.ImagesDeleted ?? []);
      process.stdout.write(`Total reclaimed space: ${humanSize(total)}\n`);
    });

  image
    .command('prune')
    .description('remove dangling images (with -a: every image no container uses)')
    .option('-a, --all', 'remove every image no container uses')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <k=v>', 'filter: until=24h, label=k=v', collect)
    .action(async (o: { all?: boolean; filter?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const r = await new RemoteContainerTools(ctx.transport).pruneImages({ ...parseFilters(o.filter), dangling: [o.all ? 'false' : 'true'] });
      printDeleted(r.ImagesDeleted ?? []);
      process.stdout.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
    });
}

function int(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`invalid ${flag} ${JSON.stringify(v)}`, { hint: `give ${flag} a whole number` });
  return n;
}

function printDeleted(items: Array<{ Untagged?: string; Deleted?: string }>): void {
  if (!items.length) return;
  process.stdout.write('Deleted Images:\n' + items.map((d) => (d.Untagged ? `untagged: ${d.Untagged}` : `deleted: ${d.Deleted}`)).join('\n') + '\n\n');
}

/** One row per sample, the docker CLI's columns and arithmetic (memory without the page cache's inactive files). */
export function statsTable(samples: StatsSample[], trunc = true): string {
  const rows = samples.map((s) => {
    const cpuDelta = s.cpu_stats.cpu_usage.total_usage - s.precpu_stats.cpu_usage.total_usage;
    const sysDelta = s.cpu_stats.system_cpu_usage - s.precpu_stats.system_cpu_usage;
    const cpu = sysDelta > 0 && cpuDelta >= 0 ? (cpuDelta / sysDelta) * (s.cpu_stats.online_cpus || 1) * 100 : 0;
    const st = s.memory_stats.stats ?? {};
    const used = Math.max(0, (s.memory_stats.usage ?? 0) - (st.total_inactive_file ?? st.inactive_file ?? 0));
    const limit = s.memory_stats.limit ?? 0;
    const net = Object.values(s.networks ?? {}).reduce((a, n) => [a[0] + n.rx_bytes, a[1] + n.tx_bytes], [0, 0]);
    const blk = (s.blkio_stats.io_service_bytes_recursive ?? []).reduce((a, e) => [a[0] + (e.op === 'read' ? e.value : 0), a[1] + (e.op === 'write' ? e.value : 0)], [0, 0]);
    return [
      trunc ? shortId(s.id) : s.id,
      s.name.replace(/^\//, ''),
      `${cpu.toFixed(2)}%`,
      `${humanSize(used)} / ${humanSize(limit)}`,
      `${limit ? ((used / limit) * 100).toFixed(2) : '0.00'}%`,
      `${humanSize(net[0])} / ${humanSize(net[1])}`,
      `${humanSize(blk[0])} / ${humanSize(blk[1])}`,
      String(s.pids_stats.current ?? 0),
    ];
  });
  return table(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'], rows);
}

async function dfText(ctx: CliContext, verbose: boolean): Promise<string> {
  const du = await new RemoteContainerTools(ctx.transport).df();
  const activeImages = du.Images.filter((i) => i.Containers > 0);
  const imgSize = du.Images.reduce((a, i) => a + i.Size, 0);
  const imgReclaim = du.Images.filter((i) => i.Containers === 0).reduce((a, i) => a + i.Size, 0);
  const running = du.Containers.filter((c) => c.State === 'running');
  const ctrSize = du.Containers.reduce((a, c) => a + (c.SizeRw ?? 0), 0);
  const ctrReclaim = du.Containers.filter((c) => c.State !== 'running').reduce((a, c) => a + (c.SizeRw ?? 0), 0);
  const volSize = du.Volumes.reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0);
  const volReclaim = du.Volumes.filter((v) => (v.UsageData?.RefCount ?? 0) === 0).reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0);
  const pct = (r: number, t: number) => `${humanSize(r)} (${t ? Math.round((r / t) * 100) : 0}%)`;
  let out = table(['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], [
    ['Images', String(du.Images.length), String(activeImages.length), humanSize(imgSize), pct(imgReclaim, imgSize)],
    ['Containers', String(du.Containers.length), String(running.length), humanSize(ctrSize), pct(ctrReclaim, ctrSize)],
    ['Local Volumes', String(du.Volumes.length), String(du.Volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length), humanSize(volSize), pct(volReclaim, volSize)],
    ['Build Cache', '0', '0', '0B', '0B'],
  ]);
  if (du.VolumePool) out += '\nVolume pool:\n\n' + poolText(du.VolumePool);
  if (verbose) {
    out += '\nImages space usage:\n\n' + table(['REPOSITORY:TAG', 'IMAGE ID', 'SIZE', 'CONTAINERS'], du.Images.map((i) => [i.RepoTags.join(', '), shortId(i.Id), humanSize(i.Size), String(i.Containers)]));
    out += '\nContainers space usage:\n\n' + table(['CONTAINER ID', 'IMAGE', 'SIZE', 'STATUS', 'NAMES'], du.Containers.map((c) => [shortId(c.Id), c.Image, humanSize(c.SizeRw ?? 0), c.Status, c.Names.map((n) => n.slice(1)).join(',')]));
    out += '\nLocal Volumes space usage:\n\n' + table(['VOLUME NAME', 'LINKS', 'SIZE'], du.Volumes.map((v) => [v.Name, String(v.UsageData?.RefCount ?? 0), humanSize(Math.max(0, v.UsageData?.Size ?? 0))]));
  }
  return out;
}
