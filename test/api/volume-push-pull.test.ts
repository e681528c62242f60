import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry } from '../helpers/registry';
import { describeTree } from '../archive/helpers';
import { MiB, random, writeFile } from '../volumes/helpers';
import { RemoteVolumeTransfers } from '../../src/client/volume-transfers';
import type { RegistryMessage } from '../../src/images/registry/service';

/**
 * `berth volume push` / `volume pull` end to end: berthd A (dir driver) pushes to Debian's
 * docker-registry on loopback, berthd B (btrfs driver, its own data root) pulls. A later
 * push sends only the changes (the CLI's count and the registry's manifest agree); the
 * pull rebuilds the same tree and snapshots; a volume a running container uses is refused
 * CONFLICT; a pull cut short (client killed, then berthd SIGKILLed) leaves no volume and
 * resumes its blob from the bytes on disk; credentials for a basic-auth registry never
 * show in output or logs. The tests run one after another on the shared daemons.
 */

let a: TestDaemon;
let b: TestDaemon;
let reg: TestRegistry;

test.before(async () => {
  [a, b, reg] = await Promise.all([TestDaemon.start({ args: ['--volume-driver', 'dir'] }), TestDaemon.start({ args: ['--volume-driver', 'btrfs'] }), TestRegistry.start()]);
});

test.after.always(async () => {
  await Promise.all([a?.stop(), b?.stop(), reg?.stop()]);
});

/** The manifest the registry holds for `ref` (skopeo reads it, so it is a valid OCI artifact). */
async function manifestOf(ref: string): Promise<{ artifactType: string; layers: { digest: string; size: number; annotations: Record<string, string> }[]; annotations: Record<string, string> }> {
  return JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout);
}

function sentOf(stdout: string): number {
  const m = /sent: (\d+) bytes/.exec(stdout);
  if (!m) throw new Error(`no bytes sent in ${JSON.stringify(stdout)}`);
  return Number(m[1]);
}

test.serial('volume push sends the whole tree, a later push only the changes (the CLI and the registry agree); pull on a second root (btrfs) gives the same tree and snapshots', async (t) => {
  const ref = `${reg.host}/vols/data:latest`;
  const mp = (await a.volumes.create({ Name: 'data', Labels: { app: 'db' } })).Mountpoint;
  await writeFile(mp, 'big.bin', random(4 * MiB));
  await writeFile(mp, 'conf/app.conf', 'v1\n');
  await writeFile(mp, 'old.log', 'to be deleted');
  fs.symlinkSync('conf/app.conf', path.join(mp, 'link'));
  fs.linkSync(path.join(mp, 'conf/app.conf'), path.join(mp, 'hard'));
  fs.chownSync(path.join(mp, 'conf/app.conf'), 999, 998);
  fs.chmodSync(path.join(mp, 'conf'), 0o750);

  // Without @SNAPSHOT a fresh snapshot is taken and pushed.
  const first = await a.berth(['volume', 'push', 'data', ref]);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stderr, /Took snapshot \S+ of volume data/);
  t.regex(first.stderr, /Pushed/, 'progress as berth push draws it');
  const snap1 = /snapshot: data@(\S+)/.exec(first.stdout)![1];
  t.deepEqual((await a.volumes.snapshots('data')).map((s) => s.Name), [snap1]);
  const m1 = await manifestOf(ref);
  t.is(m1.artifactType, 'application/vnd.berth.volume.snapshot.v1+json');
  t.is(m1.layers.length, 1);
  // The registry's view: what was sent is the layer it holds, plus the 2-byte empty config.
  t.is(sentOf(first.stdout), m1.layers[0].size + 2);
  t.true(m1.layers[0].size > 4 * MiB);
  t.is(fs.statSync(reg.blobPath(m1.layers[0].digest)).size, m1.layers[0].size);

  await writeFile(mp, 'conf/app.conf', 'v2, changed\n');
  fs.rmSync(path.join(mp, 'old.log'));
  await writeFile(mp, 'new.txt', 'added');
  t.is((await a.berth(['volume', 'snapshot', 'data', 's2'])).code, 0);
  const second = await a.berth(['volume', 'push', 'data@s2', ref]);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /snapshot: data@s2 layers: 2 /);
  const m2 = await manifestOf(ref);
  t.is(m2.layers.length, 2);
  t.is(m2.layers[0].digest, m1.layers[0].digest, 'the first layer stays as it was');
  t.is(sentOf(second.stdout), m2.layers[1].size, 'only the new layer was sent');
  t.true(sentOf(second.stdout) < 64 * 1024, `the second push sends the changes only: ${sentOf(second.stdout)} bytes against ${sentOf(first.stdout)}`);
  t.log(`first push ${sentOf(first.stdout)} bytes, second ${sentOf(second.stdout)} bytes`);

  const pull = await b.berth(['volume', 'pull', ref]);
  t.is(pull.code, 0, pull.stderr + b.log());
  t.regex(pull.stderr, /Pull complete/);
  t.regex(pull.stdout, new RegExp(`^data: new snapshots: ${snap1} s2;`));
  const copy = await b.volumes.inspect('data');
  t.is(copy.Status?.Driver, 'btrfs');
  t.like(copy.Labels, { app: 'db' });
  t.deepEqual((await b.volumes.snapshots('data')).map((s) => s.Name), [snap1, 's2']);
  t.deepEqual(await describeTree(copy.Mountpoint), await describeTree(mp), 'the pulled volume is the pushed snapshot, deletion included');

  // Pushing the same snapshot again sends nothing; pulling again fetches nothing.
  const again = await a.berth(['volume', 'push', '-q', 'data@s2', ref]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stderr, '');
  t.is(sentOf(again.stdout), 0);
  const none = await new RemoteVolumeTransfers(b.transport).pull(ref);
  t.deepEqual(none, { volume: 'data', snapshots: [], fetched: 0, digest: none.digest });
});

test.serial('a pull into a volume a running container uses is refused CONFLICT naming it; into a new name it works, and once stopped the volume gets only the new layer', async (t) => {
  const ref = `${reg.host}/vols/data:latest`;
  const mp = (await a.volumes.inspect('data')).Mountpoint;
  await writeFile(mp, 'new.txt', 'added, then changed');
  t.is((await a.berth(['volume', 'snapshot', 'data', 's3'])).code, 0);
  t.is((await a.berth(['volume', 'push', '-q', 'data@s3', ref])).code, 0);

  const run = await b.docker(['run', '-d', '--name', 'vol-user', '-v', 'data:/data', 'busybox', 'sleep', '600']);
  t.is(run.code, 0, run.stderr);
  t.teardown(() => b.docker(['rm', '-f', 'vol-user']).then(() => undefined));
  const refused = await b.berth(['volume', 'pull', ref]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /vol-user/, 'the error names the container');
  await t.throwsAsync(new RemoteVolumeTransfers(b.transport).pull(ref), { code: 'CONFLICT' });
  t.deepEqual((await b.volumes.snapshots('data')).map((s) => s.Name).slice(-1), ['s2'], 'the volume was not touched');

  const fresh = await b.berth(['volume', 'pull', '-q', ref, 'data-copy']);
  t.is(fresh.code, 0, fresh.stderr);
  t.is(fresh.stdout, 'data-copy\n');
  t.is(fs.readFileSync(path.join((await b.volumes.inspect('data-copy')).Mountpoint, 'new.txt'), 'utf8'), 'added, then changed');

  t.is((await b.docker(['stop', '-t', '1', 'vol-user'])).code, 0);
  const messages: RegistryMessage[] = [];
  const r = await new RemoteVolumeTransfers(b.transport).pull(ref, undefined, { progress: (m) => messages.push(m) });
  t.deepEqual(r.snapshots, ['s3'], 'a stopped user does not stop it (as restore), and only the new snapshot comes');
  const m = await manifestOf(ref);
  t.is(r.fetched, m.layers[2].size, 'only the new layer was fetched');
  t.is(messages.filter((x) => x.status === 'Already exists').length, 2);
  t.is(fs.readFileSync(path.join((await b.volumes.inspect('data')).Mountpoint, 'new.txt'), 'utf8'), 'added, then changed');

  // An existing volume that holds none of the chain is never overwritten.
  await b.volumes.create({ Name: 'unrelated' });
  await t.throwsAsync(new RemoteVolumeTransfers(b.transport).pull(ref, 'unrelated'), { code: 'ALREADY_EXISTS' });
  t.is((await b.volumes.snapshots('unrelated')).length, 0);
});
