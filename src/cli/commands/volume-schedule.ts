import { Command } from 'commander';
import { connect } from '../context';
import { formatItems, table } from '../format';
import { RemoteVolumeSchedules } from '../../client/schedules';
import { InvalidArgumentError } from '../../../volumes/shared/errors';
import type { VolumeSchedule } from '../../volumes/schedule';

const USAGE = 'berth volume schedule VOLUME --every 15m --keep 24 [--keep-daily 7] [--pre CMD] [--post CMD]';

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`invalid ${flag} ${JSON.stringify(v)}`, { hint: `give a whole number, e.g. ${flag} 7` });
  return Number(v);
}

/** `berth volume schedule VOLUME …`, `schedule ls`, `schedule rm`: berthd's scheduled snapshots (src/volumes/schedule.ts). */
export function volumeScheduleCommands(volume: Command): void {
  const schedule = volume
    .command('schedule')
    .description("snapshot a volume every interval, keeping the newest (berthd takes them, as 'volume snapshot' does)")
    .argument('<VOLUME>')
    .option('--every <duration>', 'the interval, a Go duration of at least 1s: 15m, 1h30m, 24h')
    .option('--keep <n>', 'keep the newest N scheduled snapshots')
    .option('--keep-daily <n>', 'also keep the newest scheduled snapshot of each of the last N days that have one (UTC)')
    .option('--pre <command>', 'run `sh -c COMMAND` in each running container that uses the volume before each snapshot; if it fails, that run takes none')
    .option('--post <command>', 'run `sh -c COMMAND` in those containers after each snapshot')
    .option('--push <ref>', 'push each scheduled snapshot to this registry reference (a delta from the one pushed before)')
    .action(async (name: string, o: { every?: string; keep?: string; keepDaily?: string; pre?: string; post?: string; push?: string }, cmd: Command) => {
      if (o.every === undefined) throw new InvalidArgumentError('--every is required', { hint: `${USAGE}; 'berth volume schedule ls' shows the schedules` });
      if (o.keep === undefined) throw new InvalidArgumentError('--keep is required', { hint: USAGE });
      const spec = { Every: o.every, Keep: count(o.keep, '--keep') as number, KeepDaily: count(o.keepDaily, '--keep-daily'), Pre: o.pre, Post: o.post, Push: o.push };
      const ctx = await connect(cmd);
      const s = await new RemoteVolumeSchedules(ctx.transport).set(name, spec);
      process.stdout.write(`${s.Volume}: every ${s.Every}, keep ${s.Keep}${s.KeepDaily ? ` and ${s.KeepDaily} daily` : ''}${s.Push ? `, push to ${s.Push}` : ''}; next run ${s.NextRun}\n`);
    });

  schedule
    .command('ls')
    .alias('list')
    .description('list the volumes that have a snapshot schedule')
    .option('--format <format>', "'json' (one object per line) or a Go-style template, e.g. '{{.Volume}} {{.LastSnapshot}}'")
    .action(async (o: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const list = await new RemoteVolumeSchedules(ctx.transport).list();
      if (o.format) return void process.stdout.write(formatItems(o.format, list));
      const pushStatus = (s: VolumeSchedule) =>
        !s.Push
          ? ''
          : s.LastPushError
            ? `${s.Push}: failed, ${s.Unpushed?.length ?? 0} to retry: ${s.LastPushError.length > 60 ? s.LastPushError.slice(0, 60) + '…' : s.LastPushError}`
            : s.LastPushed
              ? `${s.Push}: pushed ${s.LastPushed}`
              : `${s.Push}: not pushed yet`;
      const status = (s: VolumeSchedule) => (s.LastError ? `error: ${s.LastError.length > 60 ? s.LastError.slice(0, 60) + '…' : s.LastError}` : s.LastRun ? 'ok' : 'not run yet');
      process.stdout.write(
        table(
          ['VOLUME', 'EVERY', 'KEEP', 'KEEP DAILY', 'LAST SNAPSHOT', 'NEXT RUN', 'STATUS', 'PUSH'],
          list.map((s) => [s.Volume, s.Every, String(s.Keep), String(s.KeepDaily), s.LastSnapshot ?? '', s.NextRun, status(s), pushStatus(s)]),
        ),
      );
    });

  schedule
    .command('rm <VOLUME...>')
    .alias('remove')
    .description("remove volumes' snapshot schedules (the snapshots taken stay)")
    .action(async (names: string[], _o: object, cmd: Command) => {
      const ctx = await connect(cmd);
      const schedules = new RemoteVolumeSchedules(ctx.transport);
      let failed: unknown;
      for (const n of names) {
        try {
          await schedules.remove(n);
          process.stdout.write(n + '\n');
        } catch (e) {
          failed ??= e;
          if (names.length > 1) process.stderr.write(`berth: ${(e as Error).message}\n`);
        }
      }
      if (failed) throw failed;
    });
}
