import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { exec, mountImage, openEnv, snapshotNames } from './helpers';

test('busybox is built on first use and its root filesystem runs sh', async (t) => {
  const env = await openEnv(t);
  t.deepEqual(await env.store.list(), []);
  const r = await env.store.resolve('busybox');
  t.deepEqual(r.config.Cmd, ['sh']);
  const [img] = await env.store.list();
  t.deepEqual(img.RepoTags, ['busybox:latest']);
  t.is(img.Id, r.id);

  const root = await mountImage(t, env, 'busybox');
  const { stdout } = await exec('chroot', [root, '/bin/sh', '-c', 'echo hi']);
  t.is(stdout, 'hi\n');
  // Applets are links to /bin/busybox at busybox's own paths; the base files are there.
  t.is(await fs.promises.readlink(path.join(root, 'usr/bin/env')), '/bin/busybox');
  t.is((await exec('chroot', [root, '/usr/bin/env', 'true'])).stderr, '');
  t.is((await fs.promises.stat(path.join(root, 'tmp'))).mode & 0o7777, 0o1777);
  t.regex(await fs.promises.readFile(path.join(root, 'etc/passwd'), 'utf8'), /^root:x:0:0:/m);
  t.regex(await fs.promises.readFile(path.join(root, 'etc/group'), 'utf8'), /^nobody:x:65534:/m);
  t.is((await exec('chroot', [root, '/bin/sh', '-c', 'id -un'])).stdout, 'root\n');
  // The staging directory is gone.
  t.deepEqual(await fs.promises.readdir(path.join(env.root, 'tmp')), []);
});

test('concurrent first uses of busybox build it once', async (t) => {
  const env = await openEnv(t);
  const results = await Promise.all([env.store.resolve('busybox'), env.store.resolve('busybox:latest'), env.store.resolve('docker.io/library/busybox')]);
  t.is(new Set(results.map((r) => r.id)).size, 1);
  t.is((await env.store.list()).length, 1);
  t.is((await snapshotNames(env)).length, 1);
  // And once made, it is not made again.
  t.is((await env.store.resolve('busybox')).id, results[0].id);
});

test('inspect, history, tag and save of busybox make it too', async (t) => {
  const env = await openEnv(t);
  const h = await env.store.history('busybox');
  t.is(h[0].CreatedBy, 'berth busybox: /bin/busybox --install');
  t.is((await env.store.inspect('busybox:latest')).Id, h[0].Id);
  t.is((await env.store.list()).length, 1);

  const tagged = await openEnv(t);
  await tagged.store.tag('busybox', 'mybox', '1');
  t.deepEqual((await tagged.store.list()).map((i) => i.RepoTags.sort()), [['busybox:latest', 'mybox:1']], 'tag made busybox, then tagged it');

  const saved = await openEnv(t);
  const chunks: Buffer[] = [];
  await saved.store.save(['busybox'], new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) }));
  const [img] = await saved.store.list();
  t.deepEqual(img.RepoTags, ['busybox:latest'], 'save made busybox');
  // The archive holds it: it loads into an empty store as the same image.
  const other = await openEnv(t);
  const { loaded } = await other.store.load(Readable.from([Buffer.concat(chunks)]));
  t.deepEqual(loaded, ['Loaded image: busybox:latest']);
  t.is((await other.store.list())[0].Id, img.Id);
});

test('only busybox:latest is made on demand', async (t) => {
  const env = await openEnv(t);
  await t.throwsAsync(env.store.resolve('busybox:1.36'), { code: 'NOT_FOUND' } as never);
  t.deepEqual(await env.store.list(), []);
});
