import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { TestDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { RemoteVolumeSchedules } from '../../src/client/schedules';
import type { VolumeSnapshot } from '../../src/volumes/service';

/** Scheduled snapshots across daemon restarts (one daemon for the file, restarted by each test in turn). */

let d: TestDaemon;
const schedules = () => new RemoteVolumeSchedules(d.transport);
const own = (snaps: VolumeSnapshot[]) => snaps.filter((s) => s.Metadata.scheduled === true);

test.before(async () => {
  d = await TestDaemon.start({ args: ['--volume-driver', 'dir'] });
});
test.after.always(async () => {
  await d?.stop();
});

test.serial('a schedule survives a daemon killed with SIGKILL and keeps firing after the restart', async (t) => {
  await d.volumes.create({ Name: 'rsurv' });
  await schedules().set('rsurv', { Every: '1s', Keep: 50 });
  await eventually(async () => own(await d.volumes.snapshots('rsurv')).length > 0, { message: 'a scheduled snapshot before the kill' });
  await d.kill();
  const restarted = new Date().toISOString();
  await d.restart();
  t.like(await schedules().get('rsurv'), { Volume: 'rsurv', Every: '1s', Keep: 50 });
  const next = await eventually(async () => own(await d.volumes.snapshots('rsurv')).find((s) => s.CreatedAt > restarted), {
    message: 'a scheduled snapshot taken after the restart',
  });
  t.regex(next.Name, /^auto-/);
  await schedules().remove('rsurv');
});

test.serial('a run missed while the daemon was down happens once at its start, not once per missed interval', async (t) => {
  await d.volumes.create({ Name: 'rmiss' });
  await schedules().set('rmiss', { Every: '1h', Keep: 10 });
  t.is(own(await d.volumes.snapshots('rmiss')).length, 0, 'the first run is an interval away');
  await d.terminate();
  // Five hours of downtime cannot be waited for: move the last run back instead (the
  // record is the daemon's own crash-safe JSON; nothing else of it changes).
  const file = path.join(d.root, 'volume-schedules.json');
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  doc.schedules.rmiss.lastRun = new Date(Date.now() - 5 * 3_600_000 - 60_000).toISOString();
  fs.writeFileSync(file, JSON.stringify(doc));
  const restarted = Date.now();
  await d.restart();

  const s = await eventually(async () => {
    const cur = await schedules().get('rmiss');
    return cur.LastRun && Date.parse(cur.LastRun) >= restarted - 1000 && cur.LastSnapshot && cur;
  }, { message: 'the missed run at the start' });
  t.is(s.LastError, undefined);
  const taken = own(await d.volumes.snapshots('rmiss'));
  t.deepEqual(taken.map((x) => x.Name), [s.LastSnapshot], 'one snapshot for five missed intervals');
  // The next run counts on from this one: an hour away, so no catch-up follows.
  t.true(Date.parse(s.NextRun) - Date.parse(s.LastRun!) === 3_600_000);
  t.true(Date.parse(s.NextRun) > Date.now() + 30 * 60_000);
});
