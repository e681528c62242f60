import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { exec, mountImage, openEnv } from './helpers';

/**
 * What a bootstrapped debian:bookworm must be, whichever mirror it came from: one layer,
 * `bash` as its command, Debian 12 inside, bash runs in it, no staging left, and a second
 * call is answered from the store (no download, no rebuild). Shared by the default test
 * (a local file:// mirror) and the opt-in network test (deb.debian.org).
 */
export async function checkBootstrap(t: ExecutionContext, mirror: string | undefined): Promise<void> {
  const env = await openEnv(t);
  const lines: string[] = [];
  const first = await env.store.bootstrap({ ref: 'debian:bookworm', mirror, progress: (p) => lines.push(p.status) });
  t.false(first.cached);
  t.true(lines.some((l) => /Retrieving|Validating|Extracting|Installing/.test(l)), 'debootstrap progress is reported');
  t.true(lines.some((l) => /Checking Release signature|Valid Release signature/.test(l)), "the Release file's signature is checked");
  const img = await env.store.inspect('debian:bookworm');
  t.is(img.Id, first.id);
  t.deepEqual(img.Config.Cmd, ['bash']);
  t.is(img.RootFS.Layers.length, 1);

  const root = await mountImage(t, env, 'debian:bookworm');
  t.regex(await fs.promises.readFile(path.join(root, 'etc/debian_version'), 'utf8'), /^12\./);
  t.is((await exec('chroot', [root, '/bin/bash', '-c', 'echo hi from $(cat /etc/debian_version | cut -c1-2)'])).stdout, 'hi from 12\n');
  t.false(fs.existsSync(path.join(root, 'debootstrap')), "debootstrap's work files are not in the image");
  t.deepEqual(await fs.promises.readdir(path.join(env.root, 'tmp')), [], 'the staging directory is gone');

  const again = await env.store.bootstrap({ ref: 'debian:bookworm', mirror });
  t.deepEqual(again, { id: first.id, cached: true }); // cached: no download, no rebuild
}
