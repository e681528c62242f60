import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { exec, mountImage, openEnv } from './helpers';

test('a vendored redis image runs redis-server --version under chroot', async (t) => {
  const env = await openEnv(t);
  const statuses: string[] = [];
  const { id } = await env.store.vendor({
    ref: 'redis',
    binaries: ['/usr/bin/redis-server', '/usr/bin/redis-cli'],
    progress: (p) => statuses.push(p.status),
  });
  const img = await env.store.inspect('redis:latest');
  t.is(img.Id, id);
  t.deepEqual(img.Config.Cmd, ['/usr/bin/redis-server']);
  t.true(statuses.some((s) => s.includes('/usr/bin/redis-server')));

  const root = await mountImage(t, env, 'redis');
  const host = (await exec('/usr/bin/redis-server', ['--version'])).stdout;
  const { stdout } = await exec('chroot', [root, '/usr/bin/redis-server', '--version']);
  t.is(stdout, host);
  t.regex((await exec('chroot', [root, '/usr/bin/redis-cli', '--version'])).stdout, /^redis-cli /);
  // The host's symlinks are recreated (redis-server -> redis-check-rdb), busybox is /bin/sh.
  t.is(await fs.promises.readlink(path.join(root, 'usr/bin/redis-server')), await fs.promises.readlink('/usr/bin/redis-server'));
  t.is((await exec('chroot', [root, '/bin/sh', '-c', 'echo ok'])).stdout, 'ok\n');
  t.is((await fs.promises.stat(path.join(root, 'tmp'))).mode & 0o7777, 0o1777);
  t.regex(await fs.promises.readFile(path.join(root, 'etc/passwd'), 'utf8'), /^nobody:/m);
});

test('vendor takes cmd and entrypoint', async (t) => {
  const env = await openEnv(t);
  await env.store.vendor({ ref: 'tools:1', binaries: ['/usr/bin/redis-cli'], entrypoint: ['/usr/bin/redis-cli'], cmd: ['--version'] });
  const img = await env.store.inspect('tools:1');
  t.deepEqual(img.Config.Entrypoint, ['/usr/bin/redis-cli']);
  t.deepEqual(img.Config.Cmd, ['--version']);
});

test('vendor refuses a missing binary, a directory and a bad name, with hints', async (t) => {
  const env = await openEnv(t);
  const missing = await t.throwsAsync(env.store.vendor({ ref: 'x', binaries: ['/usr/bin/no-such-binary-here'] }), { instanceOf: NotFoundError });
  t.truthy(missing?.hint);
  const dir = await t.throwsAsync(env.store.vendor({ ref: 'x', binaries: ['/usr/bin'] }), { instanceOf: InvalidArgumentError });
  t.truthy(dir?.hint);
  await t.throwsAsync(env.store.vendor({ ref: 'x', binaries: ['no-such-binary-in-path'] }), { instanceOf: NotFoundError });
  await t.throwsAsync(env.store.vendor({ ref: 'X', binaries: ['/usr/bin/redis-cli'] }), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(env.store.vendor({ ref: 'x', binaries: [] }), { instanceOf: InvalidArgumentError });
  t.deepEqual(await env.store.list(), []);
  t.deepEqual(await fs.promises.readdir(path.join(env.root, 'tmp')), []);
});
