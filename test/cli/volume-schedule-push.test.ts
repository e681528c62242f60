import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { freePort, TestRegistry } from '../helpers/registry';
import { RemoteVolumeSchedules } from '../../src/client/schedules';

/**
 * `berth volume schedule VOL --push REF`: each scheduled snapshot is pushed after it is taken
 * (Debian's docker-registry on loopback). A push that fails (no registry there yet) is
 * recorded on the schedule and shown by `schedule ls`, the snapshot stays, and a later run
 * pushes what is still to go once the registry answers.
 */

let d: TestDaemon;
let reg: TestRegistry | undefined;

test.before(async () => {
  d = await TestDaemon.start({ args: ['--volume-driver', 'dir'] });
});
test.after.always(async () => {
  await d?.stop();
  await reg?.stop();
});

test('a failed scheduled push is recorded and shown, keeps its snapshot, and is retried by the next run once the registry answers', async (t) => {
  const schedules = new RemoteVolumeSchedules(d.transport);
  const port = await freePort();
  const ref = `127.0.0.1:${port}/sched/spush:latest`;
  const v = await d.volumes.create({ Name: 'spush' });
  fs.writeFileSync(path.join(v.Mountpoint, 'data.txt'), 'scheduled and pushed\n');
  const set = await d.berth(['volume', 'schedule', 'spush', '--every', '2s', '--keep', '3', '--push', ref]);
  t.is(set.code, 0, set.stderr);
  t.regex(set.stdout, new RegExp(`push to ${ref.replace(/[.:/]/g, '\\$&')}`));

  // Nothing listens on the port yet: the push fails, the snapshot is taken and kept.
  const failed = await eventually(async () => {
    const s = await schedules.get('spush');
    return s.LastPushError && s.Unpushed?.length ? s : false;
  }, { message: 'a failed push recorded on the schedule' });
  t.truthy(failed.LastSnapshot);
  t.is(failed.LastError, undefined, 'the snapshot itself went well');
  const held = (await d.volumes.snapshots('spush')).map((s) => s.Name);
  t.true(failed.Unpushed!.some((n) => held.includes(n)), 'the snapshot that failed to go is kept');
  const ls = await d.berth(['volume', 'schedule', 'ls']);
  t.regex(ls.stdout, /PUSH/);
  t.regex(ls.stdout, /failed, \d+ to retry/);

  // The registry comes up: a later run pushes what was left and its own snapshot.
  reg = await TestRegistry.start({ port });
  const ok = await eventually(async () => {
    const s = await schedules.get('spush');
    return s.LastPushed && !s.LastPushError && !s.Unpushed ? s : false;
  }, { message: 'a later run to push', timeout: 120_000 });
  t.true(typeof ok.LastPushSent === 'number');
  t.regex((await d.berth(['volume', 'schedule', 'ls'])).stdout, new RegExp(`pushed ${ok.LastPushed}`));
  const res = await fetch(`http://127.0.0.1:${port}/v2/sched/spush/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const m = (await res.json()) as { layers: unknown[]; annotations: Record<string, string> };
  t.is(m.annotations['org.berth.volume.name'], 'spush');
  t.true(m.layers.length >= 2, `the retry pushed the snapshot left over and then its own, as a chain (${m.layers.length} layers)`);
  await d.berth(['volume', 'schedule', 'rm', 'spush']);
});
