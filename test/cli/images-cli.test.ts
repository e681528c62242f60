import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, exec } from '../helpers/daemon';

test('berth import with a missing file fails with NOT_FOUND and a hint, nothing made', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const r = await d.berth(['import', '/nonexistent/rootfs.tar', 'x']);
  t.is(r.code, 1);
  t.regex(r.stderr, /^berth: no such file/m);
  t.regex(r.stderr, /^hint: /m);
  t.deepEqual(await d.images.list({ all: true }), []);
});

test('berth import refuses names Docker refuses, with a hint, and makes nothing', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const src = path.join(d.root, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'x');
  const tar = path.join(d.root, 'r.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  for (const bad of ['UPPER', 'a/../b', '-x', `x:${'t'.repeat(129)}`, 'a//b', 'x:bad tag']) {
    const r = await d.berth(['import', tar, '--', bad]);
    t.is(r.code, 1, `${bad}: ${r.stdout}`);
    t.regex(r.stderr, /^hint: /m, bad);
  }
  t.deepEqual(await d.images.list({ all: true }), []);
});

test('berth import of garbage or a truncated tar is INVALID_ARGUMENT and lists nothing', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const junk = path.join(d.root, 'junk');
  fs.writeFileSync(junk, 'this is not a tarball at all\n'.repeat(100));
  const r = await d.berth(['import', junk, 'junk']);
  t.is(r.code, 1);
  t.regex(r.stderr, /^hint: /m);
  const src = path.join(d.root, 'src');
  fs.mkdirSync(src);
  fs.copyFileSync('/bin/busybox', path.join(src, 'busybox'));
  const tar = path.join(d.root, 'r.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  const cut = path.join(d.root, 'cut.tar');
  fs.writeFileSync(cut, fs.readFileSync(tar).subarray(0, 700_000));
  const r2 = await d.berth(['import', cut, 'cut']);
  t.is(r2.code, 1, r2.stdout);
  t.deepEqual(await d.images.list({ all: true }), []);
});

test('berth images --format json prints one object per line; busybox is made on first use', async (t) => {
  const d = await TestDaemon.start();
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
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const r = await d.berth(['image', 'vendor', 'redis', '/usr/bin/redis-server', '/usr/bin/redis-cli']);
  t.is(r.code, 0, r.stderr);
  const insp = JSON.parse((await d.berth(['image', 'inspect', 'redis'])).stdout)[0];
  t.deepEqual(insp.Config.Cmd, ['/usr/bin/redis-server']);
  // Run it from the image's own filesystem: save, unpack, chroot.
  const out = path.join(d.root, 'redis.tar');
  t.is((await d.berth(['save', '-o', out, 'redis'])).code, 0);
  const x = path.join(d.root, 'x');
  fs.mkdirSync(x);
  await exec('tar', ['-C', x, '-xf', out]);
  const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'))[0];
  const rootfs = path.join(d.root, 'rootfs');
  fs.mkdirSync(rootfs);
  for (const l of manifest.Layers) await exec('tar', ['-C', rootfs, '-xf', path.join(x, l)]);
  const { stdout } = await exec('chroot', [rootfs, '/usr/bin/redis-server', '--version']);
  t.regex(stdout, /Redis server v=/);
  const sh = await exec('chroot', [rootfs, '/bin/sh', '-c', 'echo ok; cat /etc/passwd']);
  t.regex(sh.stdout, /^ok\nroot:/);
});
