import test from 'ava';
import { TestDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { rejects } from '../helpers/errors';
import { RemoteVolumeSchedules } from '../../src/client/schedules';
import type { VolumeSchedule } from '../../src/volumes/schedule';
import type { VolumeSnapshot } from '../../src/volumes/service';

/** `berth volume schedule`: berthd snapshots a volume every interval and prunes to its retention (one daemon for the file). */

let d: TestDaemon;
let schedules: RemoteVolumeSchedules;

test.before(async () => {
  d = await TestDaemon.start({ args: ['--volume-driver', 'dir'] });
  schedules = new RemoteVolumeSchedules(d.transport);
});
test.after.always(async () => {
  await d?.stop();
});

const own = (snaps: VolumeSnapshot[]) => snaps.filter((s) => s.Metadata.scheduled === true).map((s) => s.Name);

async function berthOk(args: string[]): Promise<string> {
  const r = await d.berth(args);
  if (r.code !== 0) throw new Error(`berth ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('a schedule fires every interval and prunes its own snapshots to --keep; manual snapshots (even auto- named) stay', async (t) => {
  await d.volumes.create({ Name: 'sfire' });
  await d.volumes.snapshot('sfire', 'manual');
  await d.volumes.snapshot('sfire', 'auto-20200101-000000'); // a manual snapshot with a schedule-like name
  const out = await berthOk(['volume', 'schedule', 'sfire', '--every', '1s', '--keep', '2', '--pre', 'true']);
  t.regex(out, /^sfire: every 1s, keep 2; next run /);

  const first = await eventually(async () => own(await d.volumes.snapshots('sfire'))[0], { message: 'the first scheduled snapshot' });
  t.regex(first, /^auto-\d{8}-\d{6}(-\d+)?$/);
  // Pruned: the first one is gone, and two of the schedule's own remain (between a run's
  // snapshot and its pruning there are three for an instant, so wait for the state after).
  const kept = await eventually(
    async () => {
      const names = own(await d.volumes.snapshots('sfire'));
      return !names.includes(first) && names.length === 2 && names;
    },
    { message: 'retention to remove the first scheduled snapshot and keep two' },
  );
  t.is(kept.length, 2);
  const after = await d.volumes.snapshots('sfire');
  t.true(after.some((s) => s.Name === 'manual'));
  t.true(after.some((s) => s.Name === 'auto-20200101-000000'), 'an unmarked auto- snapshot is not the schedule\'s');
  const auto = after.find((s) => s.Metadata.scheduled === true) as VolumeSnapshot;
  t.is(auto.Metadata.consistency, 'clean', 'the same snapshot path as volume snapshot: nothing running, nothing frozen');
  t.deepEqual(auto.Metadata.hooks, { pre: 'true', containers: [] }, '--pre runs in containers only, and the snapshot says it ran in none');

  const s = await schedules.get('sfire');
  t.like(s, { Volume: 'sfire', Every: '1s', Keep: 2, KeepDaily: 0, Pre: 'true' });
  t.truthy(s.LastRun);
  t.is(s.LastError, undefined);

  const ls = await berthOk(['volume', 'schedule', 'ls', '--format', 'json']);
  const rows = ls.trim().split('\n').map((l) => JSON.parse(l) as VolumeSchedule);
  t.true(rows.some((r) => r.Volume === 'sfire' && r.Every === '1s'));
  t.regex(await berthOk(['volume', 'schedule', 'ls']), /^VOLUME\s+EVERY\s+KEEP\s+KEEP DAILY/);

  t.is(await berthOk(['volume', 'schedule', 'rm', 'sfire']), 'sfire\n');
  const gone = await d.berth(['volume', 'schedule', 'rm', 'sfire']);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /^hint: /m);
  await rejects(t, schedules.get('sfire'), 'NOT_FOUND');
});

test('--pre runs in the running containers that use the volume before each snapshot; a failing --pre takes none and says why', async (t) => {
  t.teardown(() => d.berth(['rm', '-f', 'sprew']));
  await berthOk(['run', '-d', '--name', 'sprew', '--network', 'none', '-v', 'spre:/data', 'busybox', 'sleep', '1000']);
  await schedules.set('spre', { Every: '1s', Keep: 3, Pre: 'echo ran >> /data/pre.log' });
  const snap = await eventually(async () => (await d.volumes.snapshots('spre')).find((s) => s.Metadata.scheduled === true), { message: 'a scheduled snapshot of spre' });
  t.is(snap.Metadata.consistency, 'application-consistent');
  t.deepEqual(snap.Metadata.hooks, { pre: 'echo ran >> /data/pre.log', containers: ['sprew'] });
  t.is((snap.Metadata.frozen as string[]).length, 1, 'the container was frozen for the snapshot, as volume snapshot does');
  // The --pre ran before the freeze: the snapshot holds what it wrote.
  await berthOk(['volume', 'clone', `spre@${snap.Name}`, 'spre-copy']);
  const log = await berthOk(['run', '--rm', '--network', 'none', '-v', 'spre-copy:/d', 'busybox', 'cat', '/d/pre.log']);
  t.regex(log, /^ran$/m);

  await schedules.set('spre', { Every: '1s', Keep: 3, Pre: 'echo not ready >&2; exit 3' });
  const failed = await eventually(async () => {
    const s = await schedules.get('spre');
    return s.LastError !== undefined && s;
  }, { message: 'a run with the failing --pre' });
  t.regex(failed.LastError as string, /^FAILED_PRECONDITION: .*exit code 3.*not ready/);
  // Every run from here on fails: the next one takes no snapshot either (and prunes nothing).
  const before = own(await d.volumes.snapshots('spre'));
  await eventually(async () => {
    const s = await schedules.get('spre');
    return s.LastRun! > failed.LastRun! && s.LastError !== undefined;
  }, { message: 'a second run with the failing --pre' });
  t.deepEqual(own(await d.volumes.snapshots('spre')), before, 'failed runs took no snapshot');
  const state = JSON.parse(await berthOk(['inspect', 'sprew']))[0].State;
  t.is(state.Status, 'running', 'the container is running, not left paused');
  await schedules.remove('spre');
});

test('volume rm drops the schedule with the volume; rename moves it', async (t) => {
  await d.volumes.create({ Name: 'srm' });
  await schedules.set('srm', { Every: '1h', Keep: 1 });
  await d.volumes.remove('srm', { force: true });
  await rejects(t, schedules.get('srm'), 'NOT_FOUND');
  await d.volumes.create({ Name: 'srm' });
  await rejects(t, schedules.get('srm'), 'NOT_FOUND', 'a new volume of the same name has no schedule');

  await d.volumes.create({ Name: 'sold' });
  await schedules.set('sold', { Every: '1h', Keep: 5, KeepDaily: 2 });
  await d.volumes.rename('sold', 'snew');
  await rejects(t, schedules.get('sold'), 'NOT_FOUND');
  t.like(await schedules.get('snew'), { Volume: 'snew', Every: '1h0m0s', Keep: 5, KeepDaily: 2 });
  await schedules.remove('snew');
});

test('bad schedules are refused with INVALID_ARGUMENT (or NOT_FOUND) and a hint, and set nothing', async (t) => {
  await d.volumes.create({ Name: 'sbad' });
  const bad: [string, object][] = [
    ['no interval', { Keep: 1 }],
    ['a malformed interval', { Every: '15 minutes', Keep: 1 }],
    ['days are not Go durations', { Every: '1d', Keep: 1 }],
    ['under a second', { Every: '500ms', Keep: 1 }],
    ['a negative interval', { Every: '-1m', Keep: 1 }],
    ['no retention', { Every: '1m' }],
    ['keep 0', { Every: '1m', Keep: 0 }],
    ['a fractional keep', { Every: '1m', Keep: 1.5 }],
    ['a negative keep-daily', { Every: '1m', Keep: 1, KeepDaily: -1 }],
    ['a string keep', { Every: '1m', Keep: '3' }],
    ['an unknown field', { Every: '1m', Keep: 1, Prune: true }],
    ['--push to a digest', { Every: '1m', Keep: 1, Push: `127.0.0.1:5000/vol@sha256:${'a'.repeat(64)}` }],
    ['--push to a malformed reference', { Every: '1m', Keep: 1, Push: 'UPPER/Case::x' }],
  ];
  for (const [why, body] of bad) {
    const e = await t.throwsAsync(d.transport.json('PUT', '/berth/v1/volumes/sbad/schedule', { body }), undefined, why);
    t.is((e as { code?: string }).code, 'INVALID_ARGUMENT', why);
    t.truthy((e as { hint?: string }).hint, why);
  }
  await rejects(t, schedules.set('nosuchvol', { Every: '1m', Keep: 1 }), 'NOT_FOUND');
  await rejects(t, schedules.set('sbad@snap', { Every: '1m', Keep: 1 }), 'INVALID_ARGUMENT');
  await rejects(t, d.transport.json('PUT', '/berth/v1/volumes/sbad/schedule'), 'INVALID_ARGUMENT', 'no body');
  await rejects(t, schedules.get('sbad'), 'NOT_FOUND', 'nothing was set');

  // The CLI refuses before it asks: a missing flag, a count that is not one; a bad --push by the daemon's refusal.
  for (const args of [['--keep', '3'], ['--every', '1m'], ['--every', '1m', '--keep', 'x'], ['--every', '1m', '--keep', '2', '--push', 'localhost:5000/v::bad']]) {
    const r = await d.berth(['volume', 'schedule', 'sbad', ...args]);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, /^hint: /m, args.join(' '));
  }
  await rejects(t, schedules.get('sbad'), 'NOT_FOUND', 'still nothing set');
});
