import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry, faultProxy, type FaultProxy } from '../helpers/registry';
import { RemoteRegistryService } from '../../src/client/registry';
import type { RegistryMessage } from '../../src/images/registry/service';

/**
 * How layers move through a registry: a push in PATCH chunks (the daemon runs with a small
 * --push-chunk-size), zstd layers, a layer held under another compression not fetched
 * again, and a config blob cut mid-body retried. One
 * daemon, one plain-HTTP registry (Debian's docker-registry) and a fault proxy in front of
 * it, for the file.
 */

const CHUNK = 64 * 1024;

let d: TestDaemon;
let reg: TestRegistry;
let proxy: FaultProxy;
let work: string;
/** An image made in berth: busybox plus a layer of 300 KB of random bytes. */
let app: { id: string; diffIDs: string[] };

test.before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reglayers-'));
  [d, reg] = await Promise.all([TestDaemon.start({ args: ['--push-chunk-size', '64KiB'] }), TestRegistry.start()]);
  proxy = await faultProxy(reg);
  const run = await d.docker(['run', '--name', 'maker', 'busybox', 'sh', '-c', 'head -c 300000 /dev/urandom > /random && echo layered > /hello']);
  if (run.code !== 0) throw new Error(run.stderr);
  const commit = await d.docker(['commit', 'maker', 'app:v1']);
  if (commit.code !== 0) throw new Error(commit.stderr);
  await d.docker(['rm', 'maker']);
  const img = await d.images.inspect('app:v1');
  app = { id: img.Id, diffIDs: img.RootFS.Layers };
});

test.after.always(async () => {
  await proxy?.close();
  await Promise.all([d?.stop(), reg?.stop()]);
  fs.rmSync(work, { recursive: true, force: true });
});

/** Remove every image but busybox (and so, at gc, their layers). */
async function dropImages(): Promise<void> {
  for (const img of await d.images.list()) if (!img.RepoTags.includes('busybox:latest')) await d.images.remove(img.Id, { force: true });
}

test.serial('a push with --push-chunk-size sends bigger blobs in PATCH chunks then a PUT, and skopeo copies what it pushed', async (t) => {
  const name = `${proxy.host}/chunked/app:v1`;
  t.is((await d.docker(['tag', 'app:v1', name])).code, 0);
  const from = proxy.seen.length;
  const push = await d.berth(['push', name]);
  t.is(push.code, 0, push.stderr);
  const reqs = proxy.seen.slice(from).filter((r) => r.url.startsWith('/v2/chunked/app/blobs/uploads/'));
  const patches = reqs.filter((r) => r.method === 'PATCH');
  // The 300 KB random layer (incompressible) alone is 5 chunks of 64 KiB.
  t.true(patches.length >= 5, JSON.stringify(reqs));
  t.true(patches.every((r) => r.status === 202));
  const puts = reqs.filter((r) => r.method === 'PUT');
  t.true(puts.length >= 2 && puts.every((r) => r.status === 201 && /digest=sha256/.test(r.url)), JSON.stringify(puts));

  const info = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/chunked/app:v1`])).stdout);
  const dir = path.join(work, 'chunked');
  await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/chunked/app:v1`, `dir:${dir}`]);
  // skopeo verified every blob's digest while copying; the layers are the ones berth holds.
  for (const l of info.layers as Array<{ digest: string; size: number }>) t.is(fs.statSync(path.join(dir, l.digest.slice(7))).size, l.size);
  await d.images.remove(name);
});

async function putManifest(repo: string, ref: string, doc: { mediaType: string; [k: string]: unknown }): Promise<void> {
  const res = await fetch(`http://${reg.host}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: JSON.stringify(doc), headers: { 'Content-Type': doc.mediaType } });
  if (res.status !== 201) throw new Error(`manifest PUT: ${res.status} ${await res.text()}`);
}

test.serial('zstd layers pull with the same image id and diff ids; the same image under a gzip tag then fetches no layer blob', async (t) => {
  const archive = path.join(work, 'app.tar');
  t.is((await d.docker(['save', '-o', archive, 'app:v1'])).code, 0);
  const zstd = `${reg.host}/comp/app:zstd`;
  const gzip = `${reg.host}/comp/app:gzip`;
  // skopeo 1.9 compresses layers with gzip even with --dest-compress-format zstd: the
  // layers of its OCI layout are made tars again, the zstd CLI compresses them, and the
  // registry API takes them with an OCI manifest naming them tar+zstd.
  const layout = path.join(work, 'oci');
  await exec('skopeo', ['copy', `docker-archive:${archive}`, `oci:${layout}:app`]);
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.slice(7));
  const plain = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
  const zlayers = [];
  for (const l of plain.layers as Array<{ digest: string }>) {
    fs.writeFileSync(`${blob(l.digest)}.tar`, gunzipSync(fs.readFileSync(blob(l.digest))));
    await exec('zstd', ['-q', '-3', '-f', `${blob(l.digest)}.tar`, '-o', `${blob(l.digest)}.zst`]);
    zlayers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', ...(await reg.putBlob('comp/app', fs.readFileSync(`${blob(l.digest)}.zst`))) });
  }
  const cfg = await reg.putBlob('comp/app', fs.readFileSync(blob(plain.config.digest)));
  await putManifest('comp/app', 'zstd', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: zlayers });
  await exec('skopeo', ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${gzip}`]);
  fs.rmSync(archive);
  const zraw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${zstd}`])).stdout);
  const graw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${gzip}`])).stdout);
  t.true((zraw.layers as Array<{ mediaType: string }>).every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'), JSON.stringify(zraw.layers));
  t.notDeepEqual(zraw.layers.map((l: { digest: string }) => l.digest), graw.layers.map((l: { digest: string }) => l.digest));
  await dropImages();

  // Through the proxy, to see what is fetched.
  const messages: RegistryMessage[] = [];
  await new RemoteRegistryService(d.transport).pull(`${proxy.host}/comp/app:zstd`, { progress: (m) => messages.push(m) });
  const img = await d.images.inspect(`${proxy.host}/comp/app:zstd`);
  t.is(img.Id, app.id);
  t.deepEqual(img.RootFS.Layers, app.diffIDs);
  const top = (zraw.layers[zraw.layers.length - 1].digest as string).slice(7, 19);
  t.true(messages.some((m) => m.id === top && m.status === 'Extracting'), 'the zstd layer was unpacked');
  const run = await d.docker(['run', '--rm', `${proxy.host}/comp/app:zstd`, 'cat', '/hello']);
  t.is(run.stdout.trim(), 'layered', run.stderr);

  const from = proxy.seen.length;
  const again = await d.docker(['pull', `${proxy.host}/comp/app:gzip`]);
  t.is(again.code, 0, again.stderr);
  const blobGets = proxy.seen.slice(from).filter((r) => r.method === 'GET' && r.url.includes('/blobs/'));
  t.deepEqual(blobGets, [], 'no blob was fetched: the layers and the config are held');
  t.is((await d.images.inspect(`${proxy.host}/comp/app:gzip`)).Id, app.id);
});

test.serial('a config blob cut mid-body is asked for again and the pull succeeds', async (t) => {
  await dropImages();
  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/comp/app:gzip`])).stdout);
  const config = raw.config.digest as string;
  proxy.cutBlob(config);
  const from = proxy.seen.length;
  const pull = await d.docker(['pull', `${proxy.host}/comp/app:gzip`]);
  t.is(pull.code, 0, pull.stderr);
  const gets = proxy.seen.slice(from).filter((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${config}`));
  t.is(gets.length, 2, JSON.stringify(gets));
  t.true(gets[0].aborted, 'the first answer was cut');
  t.is((await d.images.inspect(`${proxy.host}/comp/app:gzip`)).Id, app.id);
});
