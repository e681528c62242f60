import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { exec, mountImage, openEnv } from './helpers';

// Downloads a minimal Debian (~40 MB) from deb.debian.org: a few minutes, by design.
test('bootstrap debian:bookworm makes a Debian image that runs bash; a second call is cached', async (t) => {
  t.timeout(15 * 60_000);
  const env = await openEnv(t);
  const lines: string[] = [];
  const first = await env.store.bootstrap({ ref: 'debian:bookworm', progress: (p) => lines.push(p.status) });
  t.false(first.cached);
  t.true(lines.some((l) => /Retrieving|Validating|Extracting|Installing/.test(l)), 'debootstrap progress is reported');
  const img = await env.store.inspect('debian:bookworm');
  t.is(img.Id, first.id);
  t.deepEqual(img.Config.Cmd, ['bash']);
  t.is(img.RootFS.Layers.length, 1);

  const root = await mountImage(t, env, 'debian:bookworm');
  t.regex(await fs.promises.readFile(path.join(root, 'etc/debian_version'), 'utf8'), /^12\./);
  t.is((await exec('chroot', [root, '/bin/bash', '-c', 'echo hi from $(cat /etc/debian_version | cut -c1-2)'])).stdout, 'hi from 12\n');
  t.deepEqual(await fs.promises.readdir(path.join(env.root, 'tmp')), [], 'the staging directory is gone');

  const again = await env.store.bootstrap({ ref: 'debian:bookworm' });
  t.deepEqual(again, { id: first.id, cached: true }); // cached: no download, no rebuild
});

test('bootstrap accepts only debian:<suite>, and a failed debootstrap leaves nothing', async (t) => {
  const env = await openEnv(t);
  await t.throwsAsync(env.store.bootstrap({ ref: 'ubuntu:jammy' }), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(env.store.bootstrap({ ref: 'debian:Bad' }), { instanceOf: InvalidArgumentError });
  // A suite debootstrap has no script for fails fast, before any download.
  const e = await t.throwsAsync(env.store.bootstrap({ ref: 'debian:no-such-suite' }));
  t.truthy((e as { hint?: string }).hint);
  t.deepEqual(await env.store.list(), []);
  t.deepEqual(await fs.promises.readdir(path.join(env.root, 'tmp')), []);
});
