/**
 * `berth volume create -o size=…` (and docker's `volume create --opt size=…`) on the btrfs
 * driver: the size is a quota that a container writing through the volume meets, as
 * EDQUOT, while a volume without one takes the same write. The quota itself is tested at the
 * driver (volumes/btrfs-pool.test.ts); this is the CLI-to-container path.
 */
import test from 'ava';
import { TestDaemon, useDaemon } from '../helpers/daemon';

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start({ args: ['--volume-driver', 'btrfs'] });
});
test.after.always(() => d?.stop());

/** Run `sh -c script` in busybox with `vol` at /v; its exit code and output. */
async function runWith(name: string, vol: string, script: string): Promise<{ code: number; logs: string }> {
  const { Id } = await d.containers.create({ Image: 'busybox', Cmd: ['sh', '-c', script], HostConfig: { Binds: [`${vol}:/v`] } }, name);
  await d.containers.start(Id);
  const { StatusCode } = await d.containers.wait(Id);
  let logs = '';
  for await (const c of d.containers.logs(Id, { stdout: true, stderr: true })) logs += c.data.toString('utf8');
  return { code: StatusCode, logs };
}

// 16 MiB in one file, flushed: past an 8 MiB quota it fails on the write or at the flush.
const WRITE_16M = 'dd if=/dev/zero of=/v/big bs=1M count=16 2>&1 && sync /v/big 2>&1; echo "rc=$?"; ls /v';

test('volume create -o size=8m is a quota: a container writing 16 MiB into it gets "Disk quota exceeded"; inspect shows the size; a volume without a size takes the write', async (t) => {
  const s = useDaemon(t, d);
  const sized = s.name('sized');
  const free = s.name('free');

  const made = await d.berth(['volume', 'create', '-o', 'size=8m', sized]);
  t.is(made.code, 0, made.stderr);
  t.is(made.stdout.trim(), sized);
  const inspect = await d.volumes.inspect(sized);
  t.deepEqual(inspect.Options, { size: String(8 * 1024 * 1024) });

  const over = await runWith(s.name('over'), sized, WRITE_16M);
  t.regex(over.logs, /Disk quota exceeded/, over.logs);
  t.notRegex(over.logs, /rc=0/, 'the write past the quota failed');

  t.is((await d.berth(['volume', 'create', free])).code, 0);
  const fits = await runWith(s.name('fits'), free, WRITE_16M);
  t.regex(fits.logs, /rc=0/, fits.logs);
  t.is(fits.code, 0);

  // A size berth cannot read is refused by name, and makes nothing.
  const bad = await d.berth(['volume', 'create', '-o', 'size=lots', s.name('bad')]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /invalid volume size "lots"/);
  t.regex(bad.stderr, /512M|10G/, 'with a hint');
  await t.throwsAsync(d.volumes.inspect(s.name('bad')), { code: 'NOT_FOUND' });
});
