/**
 * The btrfs fast path of volume push and pull (src/volumes/btrfs-send-layer.ts) against a
 * real registry (Debian's docker-registry on loopback): a push from a btrfs volume carries
 * a `btrfs send` layer beside each portable one; a btrfs puller receives those (fetching
 * only them), a dir puller applies the portable layers, and both end with the source's
 * tree. A send layer whose result does not match what it claims is refused by the
 * fingerprint check, and the pull takes the portable layer instead.
 */
import test from 'ava';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { BtrfsDriver } from '../../volumes/drivers/btrfs/btrfs';
import { DirDriver } from '../../volumes/drivers/dir/dir';
import { fetchManifest, type Descriptor } from '../../src/images/registry/manifest';
import { discard } from '../../src/images/registry/transport';
import { parseReference } from '../../src/images/reference';
import { pullVolume, pushVolume } from '../../src/volumes/registry-transfer';
import { SEND_LAYER_TYPE } from '../../src/volumes/btrfs-send-layer';
import type { RegistryMessage } from '../../src/images/registry/service';
import { describeTree } from '../archive/helpers';
import { MiB, random, writeFile } from './helpers';
import { transferHarness } from './transfer-harness';

test('a btrfs push carries send layers: a btrfs pull receives them (fetching only them), a dir pull applies the portable layers, both give the same tree; a send layer that lies is refused and the portable layer used', async (t) => {
  const { tmp, reg, ctxOf } = await transferHarness(t, 'berth-volsend-');
  const open = async (name: string, kind: 'btrfs' | 'dir') => {
    const root = path.join(tmp, name);
    const d = kind === 'btrfs' ? await BtrfsDriver.open(root, { poolSize: 256 * MiB }) : await DirDriver.open(root);
    const messages: RegistryMessage[] = [];
    return { d, ctx: ctxOf(d, name, (m) => messages.push(m)), messages };
  };
  const a = await open('a', 'btrfs');
  const b = await open('b', 'btrfs');
  const c = await open('c', 'dir');
  const ref = parseReference(`${reg.host}/vols/db:latest`);
  const layersOf = async () => (await fetchManifest(a.ctx.session, ref.path, 'latest')).doc as { layers: Descriptor[] };

  const mp = (await a.d.create('db', { labels: { app: 'db' } })).mountpoint;
  await writeFile(mp, 'data/big.bin', random(4 * MiB));
  await writeFile(mp, 'conf/app.conf', 'v1\n');
  await writeFile(mp, 'old.log', 'to be deleted');
  await fsp.symlink('conf/app.conf', path.join(mp, 'link'));
  await fsp.link(path.join(mp, 'conf/app.conf'), path.join(mp, 'hard'));
  await fsp.chown(path.join(mp, 'conf/app.conf'), 999, 998);
  await a.d.snapshot('db', 's1');
  const first = await pushVolume(a.ctx, ref, 'db', 's1');
  t.is(first.layers, 1, 'one snapshot on the chain');
  let layers = (await layersOf()).layers;
  t.deepEqual(
    layers.map((l) => l.mediaType),
    ['application/vnd.oci.image.layer.v1.tar+gzip', SEND_LAYER_TYPE],
  );
  t.is(layers[1].annotations?.['org.berth.volume.btrfs.replaces'], layers[0].digest, 'the send layer names the portable layer it stands in for');

  // Change 64 KiB of the big file in place, delete one file, add one.
  const fh = await fsp.open(path.join(mp, 'data/big.bin'), 'r+');
  await fh.write(random(64 * 1024), 0, 64 * 1024, MiB);
  await fh.close();
  await fsp.rm(path.join(mp, 'old.log'));
  await writeFile(mp, 'new.txt', 'added');
  await a.d.snapshot('db', 's2');
  const second = await pushVolume(a.ctx, ref, 'db', 's2');
  t.is(second.layers, 2);
  layers = (await layersOf()).layers;
  t.is(layers.length, 4, 'a changeset and a send -p layer added');
  t.is(layers[3].annotations?.['org.berth.volume.base'], 's1');
  t.true(layers[3].size < 512 * 1024, `the incremental send layer carries only the change (${layers[3].size} bytes)`);

  const onBtrfs = await pullVolume(b.ctx, ref);
  t.deepEqual(onBtrfs.snapshots, ['s1', 's2']);
  t.deepEqual(onBtrfs.received, ['s1', 's2'], `btrfs to btrfs: every snapshot came by btrfs receive (${b.messages.filter((m) => typeof m.status === 'string' && m.status.startsWith('btrfs receive refused')).map((m) => m.status).join('; ')})`);
  t.is(onBtrfs.fetched, layers[1].size + layers[3].size, 'only the send layers were fetched');
  t.true(b.messages.some((m) => m.status === 'Pull complete (btrfs receive)'), 'the progress names the fast path');
  const bmp = (await b.d.inspect('db')).mountpoint;
  t.deepEqual(await describeTree(bmp), await describeTree(mp), 'the received volume equals the pushed snapshot');
  t.like((await b.d.snapshots('db'))[1].metadata, { pulled: { via: 'btrfs receive' } });

  const onDir = await pullVolume(c.ctx, ref);
  t.deepEqual(onDir.received, [], 'btrfs to dir: the portable layers');
  t.is(onDir.fetched, layers[0].size + layers[2].size, 'and only those were fetched');
  t.deepEqual(await describeTree((await c.d.inspect('db')).mountpoint), await describeTree(mp), 'the same tree on dir');

  // A third snapshot continues the received chain on b by receive, and the dir copy by changeset.
  await writeFile(mp, 'new.txt', 'added, then changed');
  await a.d.snapshot('db', 's3');
  await pushVolume(a.ctx, ref, 'db', 's3');
  layers = (await layersOf()).layers;
  const again = await pullVolume(b.ctx, ref);
  const refused = () => b.messages.filter((m) => typeof m.status === 'string' && m.status.startsWith('btrfs receive refused')).map((m) => m.status).join('; ');
  t.deepEqual(again.received, ['s3'], `a btrfs volume holding the received parent receives only the new snapshot (${refused()})`);
  t.is(again.fetched, layers[5].size);
  t.deepEqual(await describeTree(bmp), await describeTree(mp));
  t.deepEqual((await pullVolume(c.ctx, ref)).snapshots, ['s3']);

  // A send layer that claims another tree (a hostile or damaged layer, annotations and all
  // consistent with the blob) is refused by the fingerprint check: the portable layer is used.
  const doc = (await fetchManifest(a.ctx.session, ref.path, 'latest')).doc as { layers: Descriptor[] };
  doc.layers[1] = { ...doc.layers[1], annotations: { ...doc.layers[1].annotations, 'org.berth.volume.fingerprint': 'sha256:' + '0'.repeat(64) } };
  const body = Buffer.from(JSON.stringify(doc));
  const res = await a.ctx.session.request('PUT', `/v2/${ref.path}/manifests/lying`, {
    scope: `repository:${ref.path}:pull,push`,
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': String(body.length) },
    body,
    what: 'manifest',
  });
  discard(res);
  const lying = await pullVolume(b.ctx, parseReference(`${reg.host}/vols/db:lying`), 'db-lying');
  t.deepEqual(lying.snapshots, ['s1', 's2', 's3']);
  t.false(lying.received.includes('s1'), 's1 came from the portable layer');
  t.deepEqual(lying.received, [], 'and with no received parent, the chain continued by changesets');
  t.deepEqual(await describeTree((await b.d.inspect('db-lying')).mountpoint), await describeTree(mp));
  t.true(b.messages.some((m) => typeof m.status === 'string' && m.status.startsWith('btrfs receive refused')));
});
