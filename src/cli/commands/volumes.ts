import * as fs from 'node:fs';
import { Command } from 'commander';
import { pipeline } from 'node:stream/promises';
import { collect, connect } from '../context';
import { readWithProgress, writeArchive } from '../progress';
import { formatItems, humanSize, table } from '../format';
import { parseBytes, parseFilters, parseKeyValues, parseLabels } from '../parse';
import { InvalidArgumentError, NotFoundError } from '../../../volumes/shared/errors';
import type { VolumePool, VolumeSnapshot } from '../../volumes/service';
import { volumeScheduleCommands } from './volume-schedule';
import { volumeTransferCommands } from './volume-transfer';

/** `VOL@SNAP` → [VOL, SNAP]; `VOL` → [VOL, undefined]. */
function splitAt(ref: string): [string, string | undefined] {
  const i = ref.indexOf('@');
  return i < 0 ? [ref, undefined] : [ref.slice(0, i), ref.slice(i + 1) || undefined];
}

/** `berth volume pool` (and `system df`): the pool's numbers in words. */
export function poolText(p: VolumePool): string {
  return [
    `Pool file:   ${p.File} (mounted at ${p.Mountpoint})`,
    `Size:        ${humanSize(p.Size)} (used ${humanSize(p.Used)}, free ${humanSize(p.Free)})`,
    `On the host: ${humanSize(p.Allocated)} reserved for a ${humanSize(p.FileSize)} file${p.Allocated < p.FileSize ? ' (it has holes: not all of it is reserved)' : ''}`,
    `Host free:   ${humanSize(p.HostFree)} of ${humanSize(p.HostSize)}; the pool may grow by ${humanSize(p.GrowRoom)}`,
    `Auto-grow:   ${p.AutoGrow ? 'on' : 'off'}${p.GrowError ? ` (last attempt failed: ${p.GrowError})` : ''}`,
  ].join('\n') + '\n';
}

export function volumeCommands(program: Command): void {
  const volume = program.command('volume').description('manage data volumes, their snapshots, clones, export and import, push and pull');

  volume
    .command('create [NAME]')
    .description('make a volume (a 64-hex name when none is given)')
    .option('-d, --driver <driver>', "volume driver ('local', or this daemon's: btrfs or dir)")
    .option('-l, --label <k=v>', 'set a label', collect)
    .option('-o, --opt <k=v>', 'driver option: size=10G (btrfs only)', collect)
    .action(async (name: string | undefined, o: { driver?: string; label?: string[]; opt?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const v = await ctx.volumes.create({ Name: name, Driver: o.driver, Labels: parseLabels(o.label), DriverOpts: parseKeyValues(o.opt, '-o') });
      process.stdout.write(v.Name + '\n');
    });

  volume
    .command('ls')
    .alias('list')
    .description('list volumes')
    .option('-q, --quiet', 'only show names')
    .option('-f, --filter <filter>', 'filter: name=…, label=k[=v], dangling=true', collect)
    .option('--format <format>', "'json' (one object per line) or a Go-style template, e.g. '{{.Name}}'")
    .action(async (o: { quiet?: boolean; filter?: string[]; format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const { Volumes } = await ctx.volumes.list(parseFilters(o.filter));
      if (o.quiet) return void process.stdout.write(Volumes.map((v) => v.Name + '\n').join(''));
      if (o.format) return void process.stdout.write(formatItems(o.format, Volumes));
      process.stdout.write(table(['DRIVER', 'VOLUME NAME'], Volumes.map((v) => [v.Driver, v.Name])));
    });

  volume
    .command('inspect <VOLUME...>')
    .description('show volumes as JSON')
    .option('-f, --format <format>', "a Go-style template, e.g. '{{.Mountpoint}}'")
    .action(async (names: string[], o: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const out = [];
      for (const n of names) out.push(await ctx.volumes.inspect(n));
      if (o.format && o.format !== 'json') return void process.stdout.write(formatItems(o.format, out));
      process.stdout.write(JSON.stringify(out, null, 4) + '\n');
    });

  volume
    .command('rm <VOLUME...>')
    .alias('remove')
    .description('remove volumes (refused while a container uses one)')
    .option('-f, --force', 'remove the volume with its snapshots, even if clones made on mount of it (VOLUME@SNAPSHOT) exist (they stay)')
    .action(async (names: string[], o: { force?: boolean }, cmd: Command) => {
      const ctx = await connect(cmd);
      let failed: unknown;
      for (const n of names) {
        try {
          await ctx.volumes.remove(n, { force: o.force });
          process.stdout.write(n + '\n');
        } catch (e) {
          failed ??= e;
          if (names.length > 1) process.stderr.write(`berth: ${(e as Error).message}\n`);
        }
      }
      if (failed) throw failed;
    });

  volume
    .command('pool')
    .description("show the btrfs pool the volumes live in (its size, use and the host's free space), or grow it")
    .option('--grow <size>', 'grow the pool file to this new total size (e.g. 20g)')
    .option('-f, --format <format>', "'json' or a Go-style template")
    .action(async (o: { grow?: string; format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const p = o.grow ? await ctx.volumes.growPool(parseBytes(o.grow, '--grow')) : await ctx.volumes.pool();
      if (o.format) return void process.stdout.write(formatItems(o.format, [p ?? {}]));
      if (!p) return void process.stdout.write('no volume pool: volumes live on the host filesystem directly\n');
      process.stdout.write(poolText(p));
    });

  volume
    .command('prune')
    .description('remove unused anonymous volumes (all unused volumes with -a)')
    .option('-a, --all', 'remove unused named volumes too')
    .option('-f, --force', 'do not ask (berth never asks)')
    .option('--filter <filter>', 'filter: label=k[=v]', collect)
    .action(async (o: { all?: boolean; filter?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const filters = parseFilters(o.filter);
      filters.all = [o.all ? 'true' : 'false']; // explicit: the API's default depends on its version
      const r = await ctx.volumes.prune(filters);
      if (r.VolumesDeleted.length) process.stdout.write('Deleted Volumes:\n' + r.VolumesDeleted.map((v) => v + '\n').join('') + '\n');
      process.stdout.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
    });

  volume
    .command('rename <VOLUME> <NEW_NAME>')
    .description('rename a volume no container uses')
    .action(async (name: string, newName: string, _o: object, cmd: Command) => {
      const ctx = await connect(cmd);
      process.stdout.write((await ctx.volumes.rename(name, newName)).Name + '\n');
    });

  const snapshot = volume
    .command('snapshot')
    .description('take a snapshot of a volume (running containers that use it are frozen for an instant)')
    .argument('<VOLUME>')
    .argument('[SNAPSHOT]', 'its name (default: a timestamp)')
    .option('--pre <command>', "run `sh -c COMMAND` in each running container that uses the volume before the freeze (e.g. 'redis-cli save'); if it fails, no snapshot is taken")
    .option('--post <command>', 'run `sh -c COMMAND` in those containers after the thaw')
    .action(async (name: string, snap: string | undefined, o: { pre?: string; post?: string }, cmd: Command) => {
      if (name === 'rm') throw new InvalidArgumentError('snapshot rm needs a volume and a snapshot', { hint: 'berth volume snapshot rm VOLUME SNAPSHOT' });
      const ctx = await connect(cmd);
      const s = await ctx.volumes.snapshot(name, snap, { pre: o.pre, post: o.post });
      process.stdout.write(s.Name + '\n');
    });
  snapshot
    .command('rm <VOLUME> <SNAPSHOT...>')
    .alias('remove')
    .description('remove snapshots of a volume')
    .option('-f, --force', 'remove a snapshot even if clones made on mount of it (VOLUME@SNAPSHOT) exist; the clones stay')
    .action(async (name: string, snaps: string[], o: { force?: boolean }, cmd: Command) => {
      const ctx = await connect(cmd);
      for (const s of snaps) {
        await ctx.volumes.removeSnapshot(name, s, { force: o.force });
        process.stdout.write(s + '\n');
      }
    });

  volumeScheduleCommands(volume);
  volumeTransferCommands(volume);

  volume
    .command('snapshots <VOLUME>')
    .description("list a volume's snapshots, oldest first")
    .option('--format <format>', "'json' (one object per line) or a Go-style template")
    .action(async (name: string, o: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const list = await ctx.volumes.snapshots(name);
      if (o.format) return void process.stdout.write(formatItems(o.format, list));
      const consistency = (s: VolumeSnapshot) => String(s.Metadata.consistency ?? '');
      process.stdout.write(
        table(['NAME', 'CREATED', 'SIZE', 'CONSISTENCY'], list.map((s) => [s.Name, s.CreatedAt, s.Size === undefined ? '' : humanSize(s.Size), consistency(s)])),
      );
    });

  volume
    .command('restore <VOLUME> <SNAPSHOT>')
    .description('roll a volume back to one of its snapshots (stop the containers that use it first)')
    .action(async (name: string, snap: string, _o: object, cmd: Command) => {
      const ctx = await connect(cmd);
      await ctx.volumes.restore(name, snap);
      process.stdout.write(`${name}@${snap}\n`);
    });

  volume
    .command('clone <SOURCE> <NEW_NAME>')
    .description('make a new writable volume from VOLUME or VOLUME@SNAPSHOT')
    .action(async (src: string, newName: string, _o: object, cmd: Command) => {
      const [name, snap] = splitAt(src);
      const ctx = await connect(cmd);
      process.stdout.write((await ctx.volumes.clone(name, snap, newName)).Name + '\n');
    });

  volume
    .command('export <SOURCE>')
    .description('write VOLUME or VOLUME@SNAPSHOT as a tar stream (with --since, only what changed since an older snapshot)')
    .option('-o, --output <file>', 'write to a file instead of standard output')
    .option('--since <snapshot>', 'write a changeset: what changed from this older snapshot to VOLUME@SNAPSHOT')
    .action(async (src: string, o: { output?: string; since?: string }, cmd: Command) => {
      const [name, snap] = splitAt(src);
      const ctx = await connect(cmd);
      await writeArchive(
        'Exporting',
        o.output,
        async (out) => pipeline(await ctx.volumes.export(name, snap, { since: o.since }), out),
        async (to) => void (await ctx.volumes.export(name, snap, { since: o.since, to })),
      );
    });

  volume
    .command('import <NAME> [FILE]')
    .description("make a new volume from a tar (a file, or '-' / nothing for standard input); a changeset (export --since) is applied to the existing volume instead")
    .option('-l, --label <k=v>', 'set a label', collect)
    .action(async (name: string, file: string | undefined, o: { label?: string[] }, cmd: Command) => {
      if (file && file !== '-' && !fs.existsSync(file)) throw new NotFoundError(`no such file: ${file}`, { hint: "check the path, or pass '-' to read standard input" });
      const ctx = await connect(cmd);
      const input = readWithProgress(file ?? '-', 'Importing');
      try {
        process.stdout.write((await ctx.volumes.import(name, input.stream, { labels: parseLabels(o.label) })).Name + '\n');
      } finally {
        input.done();
      }
    });
}
