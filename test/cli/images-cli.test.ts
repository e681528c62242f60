import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, exec, useDaemon, type DaemonShare } from '../helpers/daemon';

// One daemon for the tests that do not need a fresh one; each uses names and a work
// directory of its own, and asserts only about the images it tried to make.
let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(() => d?.stop());

/** A directory of this test's own under the shared daemon's root. */
function workDir(share: DaemonShare): string {
  const dir = path.join(d.root, `work-${share.tag}`);
  fs.mkdirSync(dir);
  return dir;
}

/**
 * Nothing made by a refused import: no image under any of `refs`, and no untagged image
 * (an import with no usable name would be one). No test of this file makes untagged images.
 */
async function nothingMade(t: import('ava').ExecutionContext, refs: string[]): Promise<void> {
  for (const ref of refs) t.deepEqual(await d.images.list({ all: true, filters: { reference: [ref] } }), [], `no image ${ref}`);
  t.deepEqual(await d.images.list({ all: true, filters: { dangling: ['true'] } }), [], 'no untagged image');
}

test('berth import with a missing file fails with NOT_FOUND and a hint, nothing made', async (t) => {
  const share = useDaemon(t, d);
  const r = await d.berth(['import', '/nonexistent/rootfs.tar', share.name('x')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^berth: no such file/m);
  t.regex(r.stderr, /^hint: /m);
  await nothingMade(t, [share.name('x')]);
});

test('berth import refuses names Docker refuses, with a hint, and makes nothing', async (t) => {
  const share = useDaemon(t, d);
  const dir = workDir(share);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'x');
  const tar = path.join(dir, 'r.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  // Each is invalid whatever the tag; the tag keeps them apart from other tests' names.
  const bads = [`UPPER-${share.tag}`, `a/../b-${share.tag}`, `-x-${share.tag}`, `x-${share.tag}:${'t'.repeat(129)}`, `a//b-${share.tag}`, `x-${share.tag}:bad tag`];
  for (const bad of bads) {
    const r = await d.berth(['import', tar, '--', bad]);
    t.is(r.code, 1, `${bad}: ${r.stdout}`);
    t.regex(r.stderr, /^hint: /m, bad);
  }
  await nothingMade(t, [`x-${share.tag}`, `b-${share.tag}`]);
});

test('berth import of garbage or a truncated tar is INVALID_ARGUMENT and lists nothing', async (t) => {
  const share = useDaemon(t, d);
  const dir = workDir(share);
  const junk = path.join(dir, 'junk');
  fs.writeFileSync(junk, 'this is not a tarball at all\n'.repeat(100));
  const r = await d.berth(['import', junk, share.name('junk')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^hint: /m);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.copyFileSync('/bin/busybox', path.join(src, 'busybox'));
  const tar = path.join(dir, 'r.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  const cut = path.join(dir, 'cut.tar');
  fs.writeFileSync(cut, fs.readFileSync(tar).subarray(0, 700_000));
  const r2 = await d.berth(['import', cut, share.name('cut')]);
  t.is(r2.code, 1, r2.stdout);
  await nothingMade(t, [share.name('junk'), share.name('cut')]);
});

test('berth images --format json prints one object per line; busybox is made on first use', async (t) => {
  // Its own daemon: busybox's first use on a fresh root, and a listing of exactly what it made.
  const d = await TestDaemon.start({ images: [] });
  t.teardown(() => d.stop());
  const h = await d.berth(['history', 'busybox', '--format', 'json']);
  t.is(h.code, 0, h.stderr);
  const r = await d.berth(['images', '--format', 'json']);
  t.is(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(rows.map((x) => `${x.Repository}:${x.Tag}`), ['busybox:latest']);
  const table = await d.berth(['images']);
  t.regex(table.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/m);
  t.regex(table.stdout, /^busybox\s+latest\s+[0-9a-f]{12}\s/m);
});

test('berth image vendor makes a redis image whose binary runs from its own root', async (t) => {
  const share = useDaemon(t, d);
  const dir = workDir(share);
  const name = share.name('redis');
  const r = await d.berth(['image', 'vendor', name, '/usr/bin/redis-server', '/usr/bin/redis-cli']);
  t.is(r.code, 0, r.stderr);
  const insp = JSON.parse((await d.berth(['image', 'inspect', name])).stdout)[0];
  t.deepEqual(insp.Config.Cmd, ['/usr/bin/redis-server']);
  // Run it from the image's own filesystem: save, unpack, chroot.
  const out = path.join(dir, 'redis.tar');
  t.is((await d.berth(['save', '-o', out, name])).code, 0);
  const x = path.join(dir, 'x');
  fs.mkdirSync(x);
  await exec('tar', ['-C', x, '-xf', out]);
  const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'))[0];
  t.deepEqual(manifest.RepoTags, [`${name}:latest`]);
  const rootfs = path.join(dir, 'rootfs');
  fs.mkdirSync(rootfs);
  for (const l of manifest.Layers) await exec('tar', ['-C', rootfs, '-xf', path.join(x, l)]);
  const { stdout } = await exec('chroot', [rootfs, '/usr/bin/redis-server', '--version']);
  t.regex(stdout, /Redis server v=/);
  const sh = await exec('chroot', [rootfs, '/bin/sh', '-c', 'echo ok; cat /etc/passwd']);
  t.regex(sh.stdout, /^ok\nroot:/);
});
