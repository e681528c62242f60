import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { createHash } from 'node:crypto';
import { TestDaemon, exec, listTree } from '../helpers/daemon';
import { TestRegistry, faultProxy } from '../helpers/registry';
import { RemoteRegistryService } from '../../src/client/registry';
import { eventually } from '../helpers/eventually';

/**
 * Pull and push against a real registry (Debian's docker-registry, distribution 2.8) on
 * loopback over plain HTTP: images skopeo put there pull into berth with the same id, and
 * what berth pushes skopeo reads and podman runs; the docker CLI and berth's own CLI
 * against berthd. One daemon and one registry for the file; the tests run one after
 * another.
 */

let d: TestDaemon;
let reg: TestRegistry;
/** An image made in berth (busybox + one committed layer), its id, and the registry name skopeo pushed it as. */
let made: { id: string; name: string };

test.before(async () => {
  [d, reg] = await Promise.all([TestDaemon.start(), TestRegistry.start()]);
  const run = await d.docker(['run', '--name', 'maker', 'busybox', 'sh', '-c', 'echo pulled-content > /hello && mkdir -p /data && seq 1 20000 > /data/seq']);
  if (run.code !== 0) throw new Error(run.stderr);
  const commit = await d.docker(['commit', 'maker', 'made:v1']);
  if (commit.code !== 0) throw new Error(commit.stderr);
  await d.docker(['rm', 'maker']);
  const id = (await d.docker(['inspect', '--format', '{{.Id}}', 'made:v1'])).stdout.trim();
  const archive = path.join(d.root, 'made.tar');
  const save = await d.docker(['save', '-o', archive, 'made:v1']);
  if (save.code !== 0) throw new Error(save.stderr);
  const name = `${reg.host}/test/made:v1`;
  await exec('skopeo', ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${name}`]);
  fs.rmSync(archive);
  const rmi = await d.docker(['rmi', 'made:v1']);
  if (rmi.code !== 0) throw new Error(rmi.stderr);
  made = { id, name };
});

test.after.always(async () => {
  await Promise.all([d?.stop(), reg?.stop()]);
});

test.serial('docker pull of an image skopeo pushed gives the same image id, its progress and RepoDigests', async (t) => {
  const pull = await d.docker(['pull', made.name]);
  t.is(pull.code, 0, pull.stderr + d.log());
  t.regex(pull.stdout, /Pull complete/);
  t.regex(pull.stdout, /Digest: sha256:[0-9a-f]{64}/);
  t.regex(pull.stdout, /Status: Downloaded newer image for/);
  const inspect = JSON.parse((await d.docker(['inspect', made.name])).stdout)[0];
  t.is(inspect.Id, made.id);
  const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(pull.stdout)![1];
  t.deepEqual(inspect.RepoDigests, [`${reg.host}/test/made@${digest}`]);
  const out = await d.docker(['run', '--rm', made.name, 'cat', '/hello']);
  t.is(out.stdout.trim(), 'pulled-content', out.stderr);

  const again = await d.docker(['pull', made.name]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /Image is up to date/);
});

test.serial('berth pull by digest shows progress and records the repo digest, without a tag', async (t) => {
  const digest = JSON.parse((await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${made.name}`])).stdout).Digest as string;
  await d.docker(['rmi', '-f', made.name]);
  const ref = `${reg.host}/test/made@${digest}`;
  const pull = await d.berth(['pull', ref]);
  t.is(pull.code, 0, pull.stderr);
  t.regex(pull.stderr, /Pull complete/);
  t.is(pull.stdout.trim(), ref);
  const img = await d.images.inspect(ref);
  t.is(img.Id, made.id);
  t.deepEqual(img.RepoTags, []);
  t.deepEqual(img.RepoDigests, [ref]);
});

test.serial('berth push: skopeo inspects and copies what berth pushed, and podman pulls and runs it', async (t) => {
  const name = `${reg.host}/pushed/app:v2`;
  // An image the registry has never seen: every blob is uploaded.
  t.is((await d.docker(['run', '--name', 'pusher', 'busybox', 'sh', '-c', 'echo pushed-by-berth > /hello'])).code, 0);
  t.is((await d.docker(['commit', 'pusher', name])).code, 0);
  await d.docker(['rm', 'pusher']);
  const push = await d.berth(['push', name]);
  t.is(push.code, 0, push.stderr);
  t.is((push.stdout + push.stderr).match(/: Pushed/g)?.length, 2, push.stderr);
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout + push.stderr)?.[1];
  t.truthy(digest);
  const info = JSON.parse((await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`])).stdout);
  t.is(info.Digest, digest);
  t.is(info.Layers.length, 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-skopeo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${name}`, `dir:${path.join(dir, 'copy')}`]);
  t.true(fs.existsSync(path.join(dir, 'copy', 'manifest.json')));
  // A second push of the same image to the same repository sends no layer again.
  const again = await d.docker(['push', name]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /Layer already exists/);
  t.notRegex(again.stdout, /: Pushed/);

  const p = path.join(dir, 'podman');
  const podman = await exec(
    'podman',
    ['--root', `${p}/root`, '--runroot', `${p}/run`, '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none',
      'run', '--rm', '--tls-verify=false', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', name, 'cat', '/hello'],
    { timeout: 180_000 },
  );
  t.is(podman.stdout.trim(), 'pushed-by-berth');
});

test.serial('docker push to another repository of the same registry mounts the blobs instead of sending them', async (t) => {
  const name = `${reg.host}/other/made:v1`;
  t.is((await d.docker(['tag', made.id, name])).code, 0);
  const push = await d.docker(['push', name]);
  t.is(push.code, 0, push.stderr);
  t.regex(push.stdout, /Mounted from test\/made/);
  t.notRegex(push.stdout, /: Pushed/);
  t.is(JSON.parse((await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`])).stdout).Layers.length, 2);
});

async function putManifest(repo: string, ref: string, mediaType: string, doc: object): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(JSON.stringify(doc));
  const res = await fetch(`http://${reg.host}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(body), headers: { 'Content-Type': mediaType } });
  if (res.status !== 201) throw new Error(`manifest PUT: ${res.status} ${await res.text()}`);
  return { digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, size: body.length };
}

test.serial('a multi-arch index gives amd64 by default, --platform picks another entry, attestations are skipped', async (t) => {
  const repo = 'test/made';
  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${made.name}`])).stdout);
  const configRes = await fetch(`http://${reg.host}/v2/${repo}/blobs/${raw.config.digest}`);
  const config = JSON.parse(await configRes.text());
  const armConfig = await reg.putBlob(repo, Buffer.from(JSON.stringify({ ...config, architecture: 'arm64', variant: 'v8' })));
  const armManifest = await putManifest(repo, 'arm-only', raw.mediaType, { ...raw, config: { ...raw.config, ...armConfig } });
  const amd = await putManifest(repo, 'amd-only', raw.mediaType, raw);
  const attestation = await putManifest(repo, 'attest', 'application/vnd.oci.image.manifest.v1+json', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await reg.putBlob(repo, Buffer.from('{}'))) },
    layers: [],
  });
  const index = await putManifest(repo, 'multi', 'application/vnd.oci.image.index.v1+json', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: raw.mediaType, ...armManifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...attestation, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': amd.digest } },
      { mediaType: raw.mediaType, ...amd, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  });
  const name = `${reg.host}/${repo}:multi`;
  const pull = await d.docker(['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  t.regex(pull.stdout, new RegExp(`Digest: ${index.digest}`));
  const img = await d.images.inspect(name);
  t.is(img.Id, made.id);
  t.is(img.Architecture, 'amd64');
  t.true(img.RepoDigests.includes(`${reg.host}/${repo}@${index.digest}`));

  const arm = await d.berth(['pull', '--platform', 'linux/arm64', name]);
  t.is(arm.code, 0, arm.stderr);
  const armImg = await d.images.inspect(name);
  t.is(armImg.Id, armConfig.digest);
  t.is(armImg.Architecture, 'arm64');
  const none = await d.berth(['pull', '--platform', 'linux/s390x', name]);
  t.not(none.code, 0);
  t.regex(none.stderr, /no matching manifest for linux\/s390x/);

  // create?platform=: the image held is arm64, so amd64 is not found (and the CLIs pull it).
  await t.throwsAsync(d.containers.create({ Image: name }, undefined, { platform: 'linux/amd64' }), { code: 'NOT_FOUND' });
  await t.throwsAsync(d.containers.create({ Image: name }, undefined, { platform: 'linux' }), { code: 'INVALID_ARGUMENT' });
  const heldArm = await d.containers.create({ Image: name }, undefined, { platform: 'linux/arm64' });
  await d.containers.remove(heldArm.Id, { force: true });
  const never = await d.berth(['create', '--pull', 'never', '--platform', 'linux/amd64', name]);
  t.not(never.code, 0);
  t.is((await d.images.inspect(name)).Architecture, 'arm64', '--pull never pulls nothing');
  const amdCreate = await d.berth(['create', '--platform', 'linux/amd64', name]);
  t.is(amdCreate.code, 0, amdCreate.stderr);
  t.is((await d.images.inspect(name)).Id, made.id, 'berth create --platform pulled the amd64 entry');
  const armCreate = await d.docker(['create', '--platform', 'linux/arm64', name]);
  t.is(armCreate.code, 0, armCreate.stderr);
  t.is((await d.images.inspect(name)).Id, armConfig.digest, 'docker create --platform: the CLI pulled on the 404 and created again');
  for (const id of [amdCreate.stdout.trim(), armCreate.stdout.trim()]) await d.containers.remove(id, { force: true });
});

test.serial('run and create --pull: missing pulls an image not held (berth run and docker run), always pulls again, never refuses to pull', async (t) => {
  await d.images.remove(made.name, { force: true }).catch(() => undefined);
  const never = await d.berth(['create', '--pull', 'never', made.name]);
  t.not(never.code, 0);
  t.regex(never.stderr, /No such image/);
  await t.throwsAsync(d.images.inspect(made.name), { code: 'NOT_FOUND' });
  const bad = await d.berth(['create', '--pull', 'sometimes', made.name]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /--pull/);
  const missing = await d.berth(['run', '--rm', made.name, 'cat', '/hello']);
  t.is(missing.code, 0, missing.stderr);
  t.is(missing.stdout.trim(), 'pulled-content');
  t.regex(missing.stderr, /Unable to find image/);
  t.is((await d.images.inspect(made.name)).Id, made.id);
  const always = await d.berth(['run', '--rm', '--pull', 'always', made.name, 'true']);
  t.is(always.code, 0, always.stderr);
  t.regex(always.stdout + always.stderr, /Image is up to date/);
  const held = await d.berth(['run', '--rm', made.name, 'true']);
  t.is(held.code, 0, held.stderr);
  t.notRegex(held.stdout + held.stderr, /Unable to find image|Image is up to date/, 'missing: an image held is not pulled');

  // The docker CLI's own flow: create answers 404 No such image, the CLI pulls, creates again.
  await d.images.remove(made.name, { force: true });
  const docker = await d.docker(['run', '--rm', made.name, 'cat', '/hello']);
  t.is(docker.code, 0, docker.stderr);
  t.is(docker.stdout.trim(), 'pulled-content');
  t.regex(docker.stderr, /Unable to find image/);
  t.is((await d.images.inspect(made.name)).Id, made.id);
});

test.serial('docker search and berth search list a registry\'s repositories from its catalog', async (t) => {
  const ds = await d.docker(['search', `${reg.host}/made`]);
  t.is(ds.code, 0, ds.stderr);
  t.regex(ds.stdout, new RegExp(`${reg.host}/test/made`));
  t.notRegex(ds.stdout, /pushed\/app/);
  const bs = await d.berth(['search', '--format', '{{.Name}}', `${reg.host}/app`]);
  t.is(bs.code, 0, bs.stderr);
  t.deepEqual(bs.stdout.trim().split('\n'), [`${reg.host}/pushed/app`]);
  const bad = await d.berth(['search', '--filter', 'color=red', `${reg.host}/app`]);
  t.not(bad.code, 0);
});

test.serial('a pull killed mid-layer lists nothing half-made, and the next pull resumes the layer from the bytes on disk', async (t) => {
  // One big incompressible layer, so the download is still running when berthd is killed.
  t.is((await d.docker(['run', '--name', 'big', 'busybox', 'sh', '-c', 'head -c 96000000 /dev/urandom > /big'])).code, 0);
  t.is((await d.docker(['commit', 'big', 'big:v1'])).code, 0);
  await d.docker(['rm', 'big']);
  const bigId = (await d.images.inspect('big:v1')).Id;
  const archive = path.join(d.root, 'big.tar');
  t.is((await d.docker(['save', '-o', archive, 'big:v1'])).code, 0);
  const name = `${reg.host}/test/big:v1`;
  await exec('skopeo', ['copy', '--dest-tls-verify=false', '--dest-compress-level', '1', `docker-archive:${archive}`, `docker://${name}`]);
  fs.rmSync(archive);
  t.is((await d.docker(['rmi', 'big:v1'])).code, 0);
  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${name}`])).stdout);
  const layer = raw.layers[raw.layers.length - 1] as { digest: string; size: number };
  const partial = path.join(d.root, 'images', 'content', 'partial', layer.digest.slice(7));

  const pulling = d.docker(['pull', name]);
  await eventually(() => fs.statSync(partial).size > 1_000_000, { interval: 2, timeout: 60_000, message: 'the pull to have 1 MB of the layer' });
  await d.kill();
  await pulling;
  const kept = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  t.true(kept > 0 && kept < layer.size, `partial ${kept} of ${layer.size}`);

  await d.restart();
  t.false((await d.images.list()).some((i) => i.Id === bigId || i.RepoTags.includes(name)), 'a half-pulled image is listed');

  const messages: Array<{ status?: string; id?: string; progressDetail?: { current?: number; total?: number } }> = [];
  await new RemoteRegistryService(d.transport).pull(name, { progress: (m) => messages.push(m) });
  const first = messages.find((m) => m.id === layer.digest.slice(7, 19) && m.status === 'Downloading');
  t.truthy(first);
  t.true(first!.progressDetail!.current! >= kept, 'the download started from the bytes on disk');
  t.true(layer.size - first!.progressDetail!.current! < layer.size, 'fewer bytes than the layer were fetched');
  t.is((await d.images.inspect(name)).Id, bigId);
  t.false(fs.existsSync(partial));
  await d.docker(['rmi', name]);
});

test.serial("a pull whose manifest declares layers larger than the disk's free space is refused before a byte is fetched", async (t) => {
  const repo = 'test/made';
  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${made.name}`])).stdout);
  // The registry checks that the blob exists, not the size a manifest claims for it: 1 PiB here.
  const layers = raw.layers.map((l: { size: number }, i: number) => (i === raw.layers.length - 1 ? { ...l, size: 2 ** 50 } : l));
  await putManifest(repo, 'huge', raw.mediaType, { ...raw, layers });
  for (const img of await d.images.list()) if (!img.RepoTags.includes('busybox:latest')) await d.images.remove(img.Id, { force: true });
  const partial = path.join(d.root, 'images', 'content', 'partial');
  const before = listTree(partial);
  const name = `${reg.host}/${repo}:huge`;
  await t.throwsAsync(new RemoteRegistryService(d.transport).pull(name), { code: 'FAILED_PRECONDITION' });
  t.deepEqual(listTree(partial), before, 'nothing was downloaded');
  t.false((await d.images.list()).some((i) => i.RepoTags.includes(name)));
});

// Last: it corrupts a layer the other tests' images share in the registry's storage.
test.serial('a 429 with Retry-After and a connection reset mid-layer are retried (the layer resumes from its bytes on disk); a long Retry-After fails at once with the reset time', async (t) => {
  const proxy = await faultProxy(reg);
  t.teardown(() => proxy.close());
  for (const img of await d.images.list()) if (!img.RepoTags.includes('busybox:latest')) await d.images.remove(img.Id, { force: true });
  const name = `${proxy.host}/test/made:v1`;
  proxy.throttle('1');
  proxy.resetNextBlob();
  const pull = await d.docker(['pull', name]);
  t.is(pull.code, 0, pull.stderr + d.log());
  t.is((await d.images.inspect(name)).Id, made.id);
  const manifests = proxy.seen.filter((r) => r.url.includes('/manifests/'));
  t.is(manifests[0].status, 429);
  t.true(manifests.slice(1).some((r) => r.status === 200), 'the manifest was asked for again after the 429');
  const resumed = proxy.seen.filter((r) => r.url.includes('/blobs/') && r.range);
  t.is(resumed.length, 1, `the cut blob was asked for again, once: ${JSON.stringify(proxy.seen)}`);
  t.regex(resumed[0].range ?? '', /^bytes=[1-9]\d*-$/, 'from its bytes on disk');
  t.is(resumed[0].status, 206);
  t.true(proxy.seen.some((r) => r.url === resumed[0].url && !r.range && r.status === 200), 'after a first, whole-blob GET');
  const run = await d.docker(['run', '--rm', name, 'cat', '/hello']);
  t.is(run.stdout.trim(), 'pulled-content', run.stderr);

  // A limit that resets in an hour is not waited out: the error says when.
  await d.images.remove(name, { force: true });
  proxy.throttle('3600');
  const limited = await d.berth(['pull', name]);
  t.not(limited.code, 0);
  t.regex(limited.stderr, /toomanyrequests.*resets at/);
});

test.serial('a blob corrupted on the registry\'s disk is refused and nothing of it is kept', async (t) => {
  const name = `${reg.host}/corrupt/made:v1`;
  await exec('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${made.name}`, `docker://${name}`]);
  const manifest = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${name}`])).stdout);
  const top = manifest.layers[manifest.layers.length - 1].digest as string;
  // Same length, other bytes: only the digest can tell.
  const blob = reg.blobPath(top);
  const bytes = fs.readFileSync(blob);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  fs.writeFileSync(blob, bytes);
  // Nothing local may hold the layer (the multi-arch test's images share it).
  for (const img of await d.images.list()) if (!img.RepoTags.includes('busybox:latest')) await d.images.remove(img.Id, { force: true });
  const pull = await d.docker(['pull', name]);
  t.not(pull.code, 0);
  t.regex(pull.stderr, /failed verification/);
  const imgs = await d.images.list();
  t.false(imgs.some((i) => i.RepoTags.includes('127.0.0.1:' + reg.port + '/corrupt/made:v1')));
  const content = path.join(d.root, 'images', 'content');
  t.false(fs.existsSync(path.join(content, 'blobs', 'sha256', top.slice(7))));
  // (Another layer's download, cut short by the failure, may be kept to resume; not this one.)
  t.false(listTree(path.join(content, 'partial')).includes(top.slice(7)));
});
