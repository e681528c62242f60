import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry, faultProxy, type FaultProxy } from '../helpers/registry';
import { eventually } from '../helpers/eventually';
import { makeTar } from '../helpers/tar';
import { RemoteRegistryService } from '../../src/client/registry';
import { ContentStore } from '../../src/images/content';
import { fetchBlob } from '../../src/images/registry/blobs';
import { RegistrySession } from '../../src/images/registry/client';
import { endpointFor } from '../../src/images/registry/endpoint';
import type { RegistryMessage } from '../../src/images/registry/service';

/**
 * How layers move through a registry: a push in PATCH chunks (the daemon runs with a small
 * --push-chunk-size), zstd layers, a layer held under another compression not fetched
 * again, a config blob cut mid-body retried, a client that hangs up on a pull, and an
 * extract snapshot that cannot be removed at once. One
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

/** Snapshots being unpacked (extract-*) in the daemon's layer store. */
function extractSnapshots(): string[] {
  const meta = JSON.parse(fs.readFileSync(path.join(d.root, 'layers', 'overlay', 'metadata.json'), 'utf8')) as { snapshots: Record<string, unknown> };
  return Object.keys(meta.snapshots).filter((k) => k.startsWith('extract-'));
}

test.serial('a client that hangs up on POST /images/create stops the downloads at once and leaves no image and no extract snapshot; the partial layer resumes', async (t) => {
  await dropImages();
  t.is((await d.docker(['run', '--name', 'gc', 'busybox', 'touch', '/gc'])).code, 0);
  t.is((await d.docker(['commit', 'gc', 'gctrigger:v1'])).code, 0);
  await d.docker(['rm', 'gc']);
  t.is((await d.docker(['run', '--name', 'big', 'busybox', 'sh', '-c', 'head -c 64000000 /dev/urandom > /big'])).code, 0);
  t.is((await d.docker(['commit', 'big', 'big:v1'])).code, 0);
  await d.docker(['rm', 'big']);
  const bigId = (await d.images.inspect('big:v1')).Id;
  const archive = path.join(work, 'big.tar');
  t.is((await d.docker(['save', '-o', archive, 'big:v1'])).code, 0);
  await exec('skopeo', ['copy', '--dest-tls-verify=false', '--dest-compress-level', '1', `docker-archive:${archive}`, `docker://${reg.host}/test/big:v1`]);
  fs.rmSync(archive);
  t.is((await d.docker(['rmi', 'big:v1'])).code, 0);
  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/test/big:v1`])).stdout);
  const layer = raw.layers[raw.layers.length - 1] as { digest: string; size: number };
  const partial = path.join(d.root, 'images', 'content', 'partial', layer.digest.slice(7));
  const name = `${proxy.host}/test/big:v1`;

  const from = proxy.seen.length;
  const req = http.request({ socketPath: d.socket, method: 'POST', path: `/images/create?fromImage=${encodeURIComponent(`${proxy.host}/test/big`)}&tag=v1` });
  req.on('error', () => undefined);
  req.on('response', (res) => res.resume());
  req.end();
  await eventually(() => fs.existsSync(partial) && fs.statSync(partial).size > 1_000_000, { timeout: 120_000, message: 'the big layer to be downloading' });
  req.destroy();

  // berthd hung up on the registry: the proxy saw the blob's answer cut off before its end.
  await eventually(() => proxy.seen.slice(from).some((r) => r.url.endsWith(`/blobs/${layer.digest}`) && r.aborted), { timeout: 60_000, message: 'the layer download to stop' });
  // Garbage collection (asked for by an rmi; it runs once the pull has let go) leaves no
  // extract snapshot: the cancelled pull made nothing that stays.
  await d.images.remove('gctrigger:v1');
  await eventually(() => extractSnapshots().length === 0, { timeout: 60_000, message: 'the layers being unpacked to be gone' });
  t.false((await d.images.list()).some((i) => i.Id === bigId || i.RepoTags.includes(name)), 'a half-pulled image is listed');
  const kept = fs.statSync(partial).size;
  t.true(kept > 0 && kept < layer.size, `partial ${kept} of ${layer.size}`);

  // The bytes kept are resumed from.
  const again = proxy.seen.length;
  const pull = await d.docker(['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  const resumed = proxy.seen.slice(again).filter((r) => r.url.endsWith(`/blobs/${layer.digest}`));
  t.is(resumed.length, 1, JSON.stringify(resumed));
  t.regex(resumed[0].range ?? '', /^bytes=[1-9]\d*-$/);
  t.is((await d.images.inspect(name)).Id, bigId);
  t.false(fs.existsSync(partial));
  await d.images.remove(name);
});

test.serial('a download cancelled before its unpacker started reading fails the unpacker when it reads, and the process lives on', async (t) => {
  // The unpacker of a layer listens to the download's copy only once its snapshot is
  // prepared; a cancel before that destroyed the copy with an error nobody listened for,
  // which ended berthd (the daemon of a client that hung up on a pull).
  const data = randomBytes(6 << 20);
  const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', ...(await reg.putBlob('test/early', data)) };
  const content = await ContentStore.open(path.join(work, 'content-early'));
  const session = new RegistrySession(endpointFor(reg.host), undefined, { attempts: 1 });
  const controller = new AbortController();
  let copy: PassThrough | undefined;
  const fetching = fetchBlob(session, 'test/early', desc, content, (done) => done > 1 << 20 && controller.abort(new Error('the client went away')), controller.signal, () => (copy = new PassThrough({ highWaterMark: 1 << 20 })));
  await t.throwsAsync(fetching);
  t.truthy(copy?.destroyed, 'the copy is destroyed');
  // The unpacker, starting late, sees the failure on its first read.
  await t.throwsAsync(async () => {
    for await (const _ of copy as PassThrough) void _;
  });
  const kept = fs.statSync(content.partialPath(desc.digest)).size;
  t.true(kept > 0 && kept < desc.size, `partial ${kept} of ${desc.size}`);
  t.false(await content.has(desc.digest));
});

test.serial('an extract snapshot whose removal fails after a failed unpack is logged, never listed, and garbage collection removes it once it can', async (t) => {
  await dropImages();
  // One layer whose diff id is not the one the config names: its unpack fails at the end.
  const layer = await makeTar([{ name: 'file', data: 'payload' }], { gzip: true });
  const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...(await reg.putBlob('test/baddiff', layer)) };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${'1'.repeat(64)}`] } }));
  const cfg = await reg.putBlob('test/baddiff', config);
  await putManifest('test/baddiff', 'v1', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [desc] });

  // The layer's body waits halfway; meanwhile the snapshotter's directory is made
  // immutable, so removing the extract snapshot fails (EPERM), as on a failing disk.
  const release = proxy.holdBlob(desc.digest);
  const overlay = path.join(d.root, 'layers', 'overlay');
  t.teardown(() => exec('chattr', ['-i', overlay]).then(() => undefined, () => undefined));
  const pulling = d.docker(['pull', `${proxy.host}/test/baddiff:v1`]);
  await eventually(() => extractSnapshots().length === 1, { timeout: 120_000, message: 'the layer to be unpacking' });
  const [key] = extractSnapshots();
  await exec('chattr', ['+i', overlay]);
  release();
  const pull = await pulling;
  t.not(pull.code, 0, 'the pull of a layer with the wrong diff id fails');
  await eventually(() => d.log().includes(`cannot remove snapshot ${key}`), { timeout: 60_000, message: 'the failed removal to be logged' });
  t.deepEqual(extractSnapshots(), [key]);
  t.false((await d.images.list()).some((i) => i.RepoTags.some((n) => n.includes('baddiff'))), 'nothing of the failed pull is listed');

  // Once the disk lets it, a collection of its own (no rmi, no restart) removes it.
  await exec('chattr', ['-i', overlay]);
  await eventually(() => extractSnapshots().length === 0, { timeout: 120_000, message: 'the extract snapshot to be collected' });
});

test.serial('a new image whose layers are held under another compression fetches only its config; push and save send the held blobs in a rewritten manifest, a push where the registry has the originals keeps the original manifest', async (t) => {
  await dropImages();
  const gzipRef = `${proxy.host}/comp/app:gzip`;
  t.is((await d.docker(['pull', gzipRef])).code, 0);
  const graw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/comp/app:gzip`])).stdout);
  // Another image (its config has one more Env) on the same layers, which the registry has as zstd.
  const zraw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/comp/app:zstd`])).stdout);
  const cfg = JSON.parse(await (await fetch(`http://${reg.host}/v2/comp/app/blobs/${zraw.config.digest}`)).text());
  cfg.config = { ...(cfg.config ?? {}), Env: [...(cfg.config?.Env ?? []), 'OTHER=1'] };
  const cfgDesc = await reg.putBlob('comp/app', Buffer.from(JSON.stringify(cfg)));
  const otherManifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfgDesc }, layers: zraw.layers };
  await putManifest('comp/app', 'other', otherManifest);
  const name = `${proxy.host}/comp/app:other`;

  const from = proxy.seen.length;
  const pull = await d.docker(['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  const gets = proxy.seen.slice(from).filter((r) => r.method === 'GET' && r.url.includes('/blobs/'));
  t.deepEqual(gets.map((r) => r.url), [`/v2/comp/app/blobs/${cfgDesc.digest}`], 'only the config was fetched');
  const img = await d.images.inspect(name);
  t.is(img.Id, cfgDesc.digest);
  t.deepEqual(img.RootFS.Layers, app.diffIDs);
  const run = await d.docker(['run', '--rm', name, 'sh', '-c', 'cat /hello; echo $OTHER']);
  t.is(run.stdout.trim(), 'layered\n1', run.stderr);

  // A registry without the zstd blobs gets the held gzip ones, in an OCI manifest naming them.
  const reg2 = await TestRegistry.start();
  t.teardown(() => reg2.stop());
  const dest = `${reg2.host}/copy/other:v1`;
  t.is((await d.docker(['tag', name, dest])).code, 0);
  const push = await d.docker(['push', dest]);
  t.is(push.code, 0, push.stderr);
  const pushedRaw = (await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${dest}`])).stdout;
  const praw = JSON.parse(pushedRaw);
  t.is(praw.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  t.is(praw.config.digest, cfgDesc.digest);
  // Each layer is a blob berth holds with that diff id: busybox's own for the first, the
  // gzip image's for the top one; none of the zstd ones.
  const pushed = (praw.layers as Array<{ digest: string; mediaType: string }>).map((l) => l.digest);
  t.is(pushed.length, zraw.layers.length);
  t.false(pushed.some((dg) => (zraw.layers as Array<{ digest: string }>).some((z) => z.digest === dg)), JSON.stringify(praw.layers));
  t.is(pushed[pushed.length - 1], graw.layers[graw.layers.length - 1].digest);
  t.false((praw.layers as Array<{ mediaType: string }>).some((l) => l.mediaType.includes('zstd')), JSON.stringify(praw.layers));
  // skopeo checks every digest while it copies; the config (the image id) is the same.
  await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${dest}`, `dir:${path.join(work, 'other-copy')}`]);
  t.true(fs.existsSync(path.join(work, 'other-copy', cfgDesc.digest.slice(7))));
  t.true(push.stdout.includes(`digest: sha256:${createHash('sha256').update(pushedRaw).digest('hex')}`), push.stdout);

  // Back to the registry it came from, which has the zstd blobs: the original manifest, byte for byte.
  const back = `${proxy.host}/comp/app:other-back`;
  t.is((await d.docker(['tag', name, back])).code, 0);
  t.is((await d.berth(['push', back])).code, 0);
  const original = (await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/comp/app:other`])).stdout;
  t.is((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/comp/app:other-back`])).stdout, original);

  // save writes the held blobs too; the archive loads back as the same image.
  const archive = path.join(work, 'other.tar');
  t.is((await d.docker(['save', '-o', archive, name])).code, 0);
  await dropImages();
  const load = await d.docker(['load', '-i', archive]);
  t.is(load.code, 0, load.stderr);
  t.is((await d.images.inspect(name)).Id, cfgDesc.digest);
  t.is((await d.docker(['run', '--rm', name, 'cat', '/hello'])).stdout.trim(), 'layered');
  fs.rmSync(archive);

  // What went to the second registry pulls back as the same image: its diff ids verified.
  await dropImages();
  const again = await d.docker(['pull', dest]);
  t.is(again.code, 0, again.stderr);
  const pulled = await d.images.inspect(dest);
  t.is(pulled.Id, cfgDesc.digest);
  t.deepEqual(pulled.RootFS.Layers, app.diffIDs);
  await dropImages();
});
