import test from 'ava';
import { DEFAULT_MIRROR } from '../../src/images/bootstrap';
import { checkBootstrap } from './bootstrap-check';

// Opt-in (`npm run test:network`, ava.network.config.mjs): downloads a minimal Debian
// (~40 MB) from deb.debian.org, a few minutes by design. The default suite runs the same
// check against a local mirror (bootstrap.test.ts) and needs no internet.
test('bootstrap debian:bookworm from deb.debian.org makes a Debian image that runs bash; a second call is cached', async (t) => {
  t.timeout(20 * 60_000);
  await checkBootstrap(t, DEFAULT_MIRROR);
});
