/**
 * Volume snapshots pushed to and pulled from a real registry (Debian's docker-registry on
 * loopback, test/helpers/registry.ts), through src/volumes/registry-transfer.ts over two
 * dir drivers on two roots: the first push sends the full tree, a later one only a
 * changeset layer; skopeo reads the artifact; a pull rebuilds the volume with its
 * snapshots, a second pull fetches only the new layer; a corrupted blob is refused.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DirDriver } from '../../volumes/drivers/dir/dir';
import type { VolumeDriver } from '../../volumes/drivers/driver';
import { RegistrySession } from '../../src/images/registry/client';
import { endpointFor } from '../../src/images/registry/endpoint';
import { parseReference } from '../../src/images/reference';
import { ARTIFACT_TYPE, pullVolume, pushVolume, type TransferContext } from '../../src/volumes/registry-transfer';
import type { RegistryMessage } from '../../src/images/registry/service';
import { describeTree } from '../archive/helpers';
import { TestRegistry } from '../helpers/registry';
import { MiB, random, writeFile } from './helpers';

const exec = promisify(execFile);

test('volume push sends a full layer then one small changeset layer; pull rebuilds the volume and its snapshots, then fetches only the new layer', async (t) => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-volreg-'));
  const reg = await TestRegistry.start();
  const drivers: VolumeDriver[] = [];
  const sessions: RegistrySession[] = [];
  t.teardown(async () => {
    for (const s of sessions) s.close();
    for (const d of drivers) await d.close().catch(() => undefined);
    await reg.stop();
    await fsp.rm(tmp, { recursive: true, force: true });
  });
  const open = async (name: string) => {
    const d = await DirDriver.open(path.join(tmp, name));
    drivers.push(d);
    const session = new RegistrySession(endpointFor(reg.host), undefined, { attempts: 1 });
    sessions.push(session);
    const messages: RegistryMessage[] = [];
    const ctx: TransferContext = { session, driver: d, work: path.join(tmp, name, 'transfer'), progress: (m) => messages.push(m) };
    return { d, ctx, messages };
  };
  const a = await open('a');
  const b = await open('b');
  const ref = parseReference(`${reg.host}/vols/data:latest`);

  const mp = (await a.d.create('data', { labels: { app: 'db' } })).mountpoint;
  await writeFile(mp, 'big.bin', random(4 * MiB));
  await writeFile(mp, 'conf/app.conf', 'v1\n');
  await writeFile(mp, 'old.log', 'to be deleted');
  await fsp.symlink('conf/app.conf', path.join(mp, 'link'));
  await fsp.link(path.join(mp, 'conf/app.conf'), path.join(mp, 'hard'));
  await fsp.chown(path.join(mp, 'conf/app.conf'), 999, 998);
  await a.d.snapshot('data', 's1', { metadata: { consistency: 'crash' } });
  const first = await pushVolume(a.ctx, ref, 'data', 's1');
  t.true(first.sent > 4 * MiB, `the first push sends the whole tree (${first.sent} bytes)`);
  t.is(first.layers, 1);
  t.true(a.messages.some((m) => m.status === 'Pushed'), 'progress in Docker\'s JSON form');

  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/vols/data:latest`])).stdout);
  t.is(raw.artifactType, ARTIFACT_TYPE);
  t.is(raw.annotations['org.berth.volume.snapshot'], 's1');
  t.is(raw.annotations['org.berth.volume.consistency'], 'crash');
  t.is(raw.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  // skopeo copies it whole (checking every digest) into an OCI layout.
  await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/vols/data:latest`, `oci:${path.join(tmp, 'layout')}:s1`]);
  t.true(fs.existsSync(path.join(tmp, 'layout', 'blobs', 'sha256', raw.layers[0].digest.slice(7))), 'skopeo copied the layer blob');

  await writeFile(mp, 'conf/app.conf', 'v2, changed\n');
  await fsp.rm(path.join(mp, 'old.log'));
  await writeFile(mp, 'new.txt', 'added');
  await a.d.snapshot('data', 's2');
  const second = await pushVolume(a.ctx, ref, 'data', 's2');
  t.is(second.layers, 2, 'one layer added to the chain');
  t.true(second.sent < 64 * 1024, `the second push sends only the changes (${second.sent} bytes against ${first.sent})`);
  t.log(`first push ${first.sent} bytes, second push ${second.sent} bytes`);

  const pulled = await pullVolume(b.ctx, ref);
  t.deepEqual(pulled.snapshots, ['s1', 's2']);
  t.deepEqual((await b.d.snapshots('data')).map((s) => s.name), ['s1', 's2']);
  const copy = await b.d.inspect('data');
  t.like(copy.labels, { app: 'db' });
  t.deepEqual(await describeTree(copy.mountpoint), await describeTree(mp), 'the pulled volume equals the pushed snapshot, deletion included');

  await writeFile(mp, 'new.txt', 'added, then changed');
  await a.d.snapshot('data', 's3');
  await pushVolume(a.ctx, ref, 'data', 's3');
  const again = await pullVolume(b.ctx, ref);
  t.deepEqual(again.snapshots, ['s3'], 'a volume holding the parent gets only the new snapshot');
  t.true(again.fetched < 64 * 1024, `and fetches only the new layer (${again.fetched} bytes)`);
  t.is(await fsp.readFile(path.join(copy.mountpoint, 'new.txt'), 'utf8'), 'added, then changed');

  await b.d.create('other');
  await t.throwsAsync(pullVolume(b.ctx, ref, 'other'), { code: 'ALREADY_EXISTS' }, 'an unrelated existing volume is never overwritten');

  // A corrupted blob in the registry is refused, and no volume is left half made.
  fs.writeFileSync(reg.blobPath(raw.layers[0].digest), 'corrupt');
  await t.throwsAsync(pullVolume(b.ctx, ref, 'fresh'));
  await t.throwsAsync(b.d.inspect('fresh'), { code: 'NOT_FOUND' });
});
