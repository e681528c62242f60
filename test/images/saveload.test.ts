import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { FIXTURES, exec, mountImage, openEnv, podmanEnv, readTree, sampleRootfs, snapshotNames, type Env } from './helpers';
import { goArch } from '../../src/images/config';
import { digest } from '../helpers/digest';
import { makeTar, streamOf } from '../helpers/tar';

async function saveToFile(env: Env, refs: string[], file: string): Promise<void> {
  await env.store.save(refs, fs.createWriteStream(file));
}

async function nothingLeft(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, env: Env, what: string): Promise<void> {
  t.deepEqual(await env.store.list(), [], `${what}: images`);
  t.deepEqual(await snapshotNames(env), [], `${what}: snapshots`);
  t.deepEqual(await env.store.content.list(), [], `${what}: blobs`);
  t.deepEqual(await env.store.content.ingests(), [], `${what}: ingest`);
}

test('save then load gives the same image id, names and layers', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'rt:v1', changes: ['CMD ["/bin/tool"]'] });
  await env.store.tag(id, 'localhost:5000/rt', 'v2');
  const file = path.join(env.root, 'save.tar');
  await saveToFile(env, ['rt:v1', 'localhost:5000/rt:v2'], file);

  // The archive is both a docker-archive and an OCI layout.
  const listing = (await exec('tar', ['-tf', file])).stdout.split('\n');
  for (const f of ['oci-layout', 'index.json', 'manifest.json', 'repositories', `blobs/sha256/${id.slice(7)}`]) t.true(listing.includes(f), f);
  const manifest = JSON.parse((await exec('tar', ['-xOf', file, 'manifest.json'])).stdout);
  t.deepEqual(manifest[0].RepoTags, ['rt:v1', 'localhost:5000/rt:v2']);
  t.is(manifest[0].Config, `blobs/sha256/${id.slice(7)}`);
  const index = JSON.parse((await exec('tar', ['-xOf', file, 'index.json'])).stdout);
  t.deepEqual(
    index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations),
    [
      { 'io.containerd.image.name': 'docker.io/library/rt:v1', 'org.opencontainers.image.ref.name': 'v1' },
      { 'io.containerd.image.name': 'localhost:5000/rt:v2', 'org.opencontainers.image.ref.name': 'v2' },
    ],
  );

  const other = await openEnv(t);
  const { loaded } = await other.store.load(fs.createReadStream(file));
  t.deepEqual(loaded, ['Loaded image: rt:v1', 'Loaded image: localhost:5000/rt:v2']);
  const a = await env.store.inspect(id);
  const b = await other.store.inspect(id);
  t.is(b.Id, id);
  t.deepEqual(b.RepoTags, a.RepoTags);
  t.deepEqual(b.RootFS, a.RootFS);
  t.deepEqual(b.Config, a.Config);

  // Saving again from the loaded copy gives the same bytes (blobs kept exactly, fixed headers).
  const again = path.join(env.root, 'save2.tar');
  await saveToFile(other, ['rt:v1', 'localhost:5000/rt:v2'], again);
  t.is(digest(await fs.promises.readFile(again)), digest(await fs.promises.readFile(file)));
});

test('saving by id writes no names and loads as "Loaded image ID"', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'byid' });
  const file = path.join(env.root, 'save.tar');
  await saveToFile(env, [id], file);
  const other = await openEnv(t);
  t.deepEqual((await other.store.load(fs.createReadStream(file))).loaded, [`Loaded image ID: ${id}`]);
  t.deepEqual((await other.store.list())[0].RepoTags, ['<none>:<none>']);
});

test('a berth save loads into podman with the same id and layers', async (t) => {
  const env = await openEnv(t);
  const podman = await podmanEnv(t);
  const img = await env.store.inspect((await env.store.resolve('busybox')).id);
  await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'localhost/sample:1' });
  const ours = await env.store.inspect('localhost/sample:1');
  const file = path.join(env.root, 'save.tar');
  await saveToFile(env, ['busybox', 'localhost/sample:1'], file);
  await podman(['load', '-i', file]);
  // (podman names a docker-archive's short 'busybox:latest' localhost/busybox: look up by id.)
  const theirs = JSON.parse(await podman(['image', 'inspect', img.Id.slice(7), ours.Id.slice(7)]));
  t.is(`sha256:${theirs[0].Id}`, img.Id);
  t.deepEqual(theirs[0].RootFS.Layers, img.RootFS.Layers);
  t.is(`sha256:${theirs[1].Id}`, ours.Id);
  t.deepEqual(theirs[1].RootFS.Layers, ours.RootFS.Layers);
  t.deepEqual(theirs[0].Config.Cmd, ['sh']);
});

test('skopeo turns a berth save into a gzip OCI archive that berth loads with the same id', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.resolve('busybox');
  const file = path.join(env.root, 'save.tar');
  const oci = path.join(env.root, 'oci.tar');
  await saveToFile(env, ['busybox'], file);
  await exec('skopeo', ['copy', '--quiet', '--dest-compress', '--dest-compress-format', 'gzip', `docker-archive:${file}`, `oci-archive:${oci}:localhost/skopeo:copied`]);
  const index = JSON.parse((await exec('tar', ['-xOf', oci, 'index.json'])).stdout);
  const manifest = JSON.parse((await exec('tar', ['-xOf', oci, `blobs/sha256/${index.manifests[0].digest.slice(7)}`])).stdout);
  t.is(manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip'); // really gzip: the path we test

  const other = await openEnv(t);
  const { loaded } = await other.store.load(fs.createReadStream(oci));
  t.deepEqual(loaded, ['Loaded image: localhost/skopeo:copied']);
  const img = await other.store.inspect('localhost/skopeo:copied');
  t.is(img.Id, id);
  t.deepEqual(img.RootFS.Layers, (await env.store.inspect(id)).RootFS.Layers);

  // Its gzip layer is kept as it came; saved again it still loads into berth (same id).
  const again = path.join(other.root, 'again.tar');
  await saveToFile(other, ['localhost/skopeo:copied'], again);
  const listing = (await exec('tar', ['-tf', again])).stdout;
  t.true(listing.includes(manifest.layers[0].digest.slice(7)));
  const third = await openEnv(t);
  await third.store.load(fs.createReadStream(again));
  t.is((await third.store.inspect('localhost/skopeo:copied')).Id, id);
});

test('a podman-built image with whiteouts unpacks to exactly what podman shows', async (t) => {
  const env = await openEnv(t);
  const podman = await podmanEnv(t);
  const fixture = path.join(FIXTURES, 'whiteouts.tar.gz');
  const { loaded } = await env.store.load(fs.createReadStream(fixture));
  t.deepEqual(loaded, ['Loaded image: localhost/whiteouts:latest']);
  const ours = await env.store.inspect('localhost/whiteouts');
  t.is(ours.RootFS.Layers.length, 3);
  const root = await mountImage(t, env, 'localhost/whiteouts');

  // podman 4 does not read gzip archives: give it the plain tar.
  const plain = path.join(env.root, 'whiteouts.tar');
  await fs.promises.writeFile(plain, gunzipSync(await fs.promises.readFile(fixture)));
  await podman(['load', '-i', plain]);
  const theirs = JSON.parse(await podman(['image', 'inspect', 'localhost/whiteouts:latest']))[0];
  t.deepEqual(theirs.RootFS.Layers, ours.RootFS.Layers);
  t.is(`sha256:${theirs.Id}`, ours.Id);
  const theirRoot = (await podman(['image', 'mount', 'localhost/whiteouts:latest'])).trim();

  const mine = await readTree(root);
  const expected = await readTree(theirRoot);
  t.deepEqual(mine, expected);
  // And the parts that make this fixture interesting, spelled out.
  for (const gone of ['bin/cat', 'data/gone', 'etc/group', 'opt/dir/x']) t.false(gone in mine, gone);
  t.deepEqual(Object.keys(mine).filter((k) => k.startsWith('opt/dir/')), ['opt/dir/y']);
  t.is(mine['data/keep/a'].sha256, digest('changed\n'));
  t.is(mine['data/private'].mode, 0o700);
  t.is(mine['data/link'].target, '/data/keep/a');
  t.is(mine['bin/sh'].target, 'busybox');
});

test('loading the same archive twice is harmless', async (t) => {
  const env = await openEnv(t);
  const fixture = path.join(FIXTURES, 'whiteouts.tar.gz');
  await env.store.load(fs.createReadStream(fixture));
  const snaps = await snapshotNames(env);
  const blobs = await env.store.content.list();
  await env.store.load(fs.createReadStream(fixture));
  t.is((await env.store.list()).length, 1);
  t.deepEqual(await snapshotNames(env), snaps);
  t.deepEqual(await env.store.content.list(), blobs);
});

test('a legacy docker-archive (<id>/layer.tar, <hex>.json config) loads', async (t) => {
  const env = await openEnv(t);
  const layer = await sampleRootfs();
  const diffID = digest(layer);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [diffID] } });
  const configHex = digest(config).slice(7);
  const archive = await makeTar([
    { name: 'abc123/', type: 'directory' },
    { name: 'abc123/layer.tar', data: layer },
    { name: 'abc123/VERSION', data: '1.0' },
    { name: `${configHex}.json`, data: config },
    { name: 'manifest.json', data: JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ['legacy:1'], Layers: ['abc123/layer.tar'] }]) },
    { name: 'repositories', data: JSON.stringify({ legacy: { 1: 'abc123' } }) },
  ]);
  const { loaded } = await env.store.load(streamOf(archive));
  t.deepEqual(loaded, ['Loaded image: legacy:1']);
  t.is((await env.store.inspect('legacy:1')).Id, `sha256:${configHex}`);
});

test('broken archives fail with InvalidArgument and leave nothing behind', async (t) => {
  const env = await openEnv(t);
  const layer = await sampleRootfs();
  const diffID = digest(layer);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffID] } });
  const layerPath = `blobs/sha256/${diffID.slice(7)}`;
  const good = (over: { layerPath?: string; config?: string; manifestLayers?: string[] } = {}) => {
    const cfg = over.config ?? config;
    const cfgPath = `blobs/sha256/${digest(cfg).slice(7)}`;
    return makeTar([
      { name: over.layerPath ?? layerPath, data: layer },
      { name: cfgPath, data: cfg },
      { name: 'manifest.json', data: JSON.stringify([{ Config: cfgPath, RepoTags: ['broken:1'], Layers: over.manifestLayers ?? [layerPath] }]) },
    ]);
  };
  // Sanity: the unbroken one loads (then is removed again).
  await env.store.load(streamOf(await good()));
  await env.store.remove('broken:1');

  const wrongLayer = await makeTar([{ name: 'other', data: 'not the layer the config names' }]);
  const twoLayers = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffID, diffID] } });
  const cases: Record<string, Buffer> = {
    'not a tar': Buffer.from('hello, this is not an archive at all. '.repeat(30)),
    empty: Buffer.alloc(0),
    'no manifest': await makeTar([{ name: 'something.json', data: '{}' }]),
    'missing layer path': await good({ manifestLayers: ['blobs/sha256/' + 'f'.repeat(64)] }),
    'blob digest mismatch': await good({ layerPath: `blobs/sha256/${'e'.repeat(64)}`, manifestLayers: [`blobs/sha256/${'e'.repeat(64)}`] }),
    'diff_id mismatch': await makeTar([
      { name: 'layer.tar', data: wrongLayer },
      { name: 'config.json', data: config },
      { name: 'manifest.json', data: JSON.stringify([{ Config: 'config.json', RepoTags: ['broken:1'], Layers: ['layer.tar'] }]) },
    ]),
    'layer count mismatch': await good({ config: twoLayers }),
    truncated: (await good()).subarray(0, 3000),
    'bad manifest json': await makeTar([{ name: 'manifest.json', data: '[{"Config": ' }]),
  };
  for (const [what, data] of Object.entries(cases)) {
    const e = await t.throwsAsync(env.store.load(streamOf(data)), { instanceOf: InvalidArgumentError }, what);
    t.truthy(e?.hint, what);
    await nothingLeft(t, env, what);
  }
});

test('an OCI layout with a nested index and annotations loads', async (t) => {
  const env = await openEnv(t);
  const layer = await sampleRootfs();
  const { gzipSync } = await import('node:zlib');
  const gz = gzipSync(layer);
  // The host's own platform, so the index's one manifest is the one a load picks, on any host.
  const config = JSON.stringify({ architecture: goArch(), os: 'linux', rootfs: { type: 'layers', diff_ids: [digest(layer)] } });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest(gz), size: gz.length }],
  });
  const nested = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest(manifest), size: manifest.length, platform: { os: 'linux', architecture: goArch() } },
    ],
  });
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [
      { mediaType: 'application/vnd.oci.image.index.v1+json', digest: digest(nested), size: nested.length, annotations: { 'org.opencontainers.image.ref.name': 'example.com/nested:v1' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest(manifest), size: manifest.length, annotations: { 'io.containerd.image.name': 'docker.io/library/direct:v2', 'org.opencontainers.image.ref.name': 'v2' } },
    ],
  });
  const blob = (d: string | Buffer) => ({ name: `blobs/sha256/${digest(d).slice(7)}`, data: d });
  const archive = await makeTar([
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', data: index },
    blob(nested),
    blob(manifest),
    blob(config),
    blob(gz),
  ]);
  const { loaded } = await env.store.load(streamOf(archive));
  t.deepEqual(loaded, ['Loaded image: example.com/nested:v1', 'Loaded image: direct:v2']);
  const img = await env.store.inspect('direct:v2');
  t.is(img.Id, digest(config));
  t.deepEqual(img.RootFS.Layers, [digest(layer)]);
  t.deepEqual(img.RepoTags, ['direct:v2', 'example.com/nested:v1']);
  t.true(await env.store.content.has(digest(gz)));
  t.is((await env.store.inspect(`direct@${digest(manifest)}`)).Id, img.Id);
});
