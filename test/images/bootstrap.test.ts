import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { openEnv } from './helpers';
import { checkBootstrap } from './bootstrap-check';

/**
 * The default suite needs no internet: debootstrap runs for real, against a local Debian
 * mirror (file://) that `.ci/debian-mirror` makes once per machine (npm test runs it; it
 * holds the signed Release, the Packages index and the minbase .debs). The same check
 * against deb.debian.org is the opt-in `npm run test:network` (bootstrap.network.ts).
 */
const MIRROR_DIR = path.join(process.env.BERTH_TEST_CACHE ?? '/var/cache/berth-test', 'debian-bookworm');

test('bootstrap debian:bookworm from a local file:// mirror makes a Debian image that runs bash; a second call is cached', async (t) => {
  t.timeout(10 * 60_000); // a hang guard: debootstrap unpacks ~90 packages on a loaded machine
  if (!fs.existsSync(path.join(MIRROR_DIR, '.complete'))) {
    t.fail(`no local Debian mirror at ${MIRROR_DIR}: run \`bash .ci/debian-mirror\` (npm test does)`);
    return;
  }
  await checkBootstrap(t, `file://${MIRROR_DIR}`);
});

test('bootstrap accepts only debian:<suite>, and a failed debootstrap leaves nothing', async (t) => {
  const env = await openEnv(t);
  await t.throwsAsync(env.store.bootstrap({ ref: 'ubuntu:jammy' }), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(env.store.bootstrap({ ref: 'debian:Bad' }), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(env.store.bootstrap({ ref: 'debian:bookworm', mirror: 'ftp://example.org/debian' }), { instanceOf: InvalidArgumentError });
  // A suite debootstrap has no script for fails fast, before any download.
  const e = await t.throwsAsync(env.store.bootstrap({ ref: 'debian:no-such-suite' }));
  t.truthy((e as { hint?: string }).hint);
  t.deepEqual(await env.store.list(), []);
  t.deepEqual(await fs.promises.readdir(path.join(env.root, 'tmp')), []);
});
