import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { runCommand } from '../helpers/proc';

/**
 * A multi-stage build that compiles C with gcc on Debian and copies only the binary into
 * a scratch stage. The base comes from `berth image bootstrap` against the local file://
 * mirror (.ci/debian-mirror); gcc comes from deb.debian.org through the RUN container's
 * default bridge, as from any container (this test needs the Debian mirrors, which the
 * project's machines reach).
 */
const MIRROR_DIR = path.join(process.env.BERTH_TEST_CACHE ?? '/var/cache/berth-test', 'debian-bookworm');

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

test('multi-stage: gcc on a bootstrapped Debian compiles a static binary; the final scratch image holds only it and runs it', async (t) => {
  t.timeout(20 * 60_000); // a hang guard: debootstrap plus an apt-get of gcc on a loaded machine
  if (!fs.existsSync(path.join(MIRROR_DIR, '.complete'))) {
    t.fail(`no local Debian mirror at ${MIRROR_DIR}: run \`bash .ci/debian-mirror\` (npm test does)`);
    return;
  }
  const boot = await d.berth(['image', 'bootstrap', 'debian:bookworm', '--mirror', `file://${MIRROR_DIR}`]);
  t.is(boot.code, 0, boot.stderr);
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-gcc-'));
  t.teardown(() => fs.promises.rm(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'hello.c'), '#include <stdio.h>\nint main(void) { printf("hello from gcc\\n"); return 0; }\n');
  fs.writeFileSync(
    path.join(dir, 'Dockerfile'),
    [
      'FROM debian:bookworm AS build',
      'RUN echo "deb http://deb.debian.org/debian bookworm main" > /etc/apt/sources.list && apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev',
      'WORKDIR /src',
      'COPY hello.c .',
      'RUN gcc -static -O2 -o /hello hello.c',
      'FROM scratch',
      'COPY --from=build /hello /hello',
      'ENTRYPOINT ["/hello"]',
      '',
    ].join('\n'),
  );
  const b = await runCommand('docker', ['build', '-t', 'hello-gcc:1', dir], { env: { ...d.env, DOCKER_BUILDKIT: '0' } });
  t.is(b.code, 0, b.stdout + b.stderr);
  const r = await d.docker(['run', '--rm', 'hello-gcc:1']);
  t.is(r.stdout, 'hello from gcc\n', r.stderr);
  const img = JSON.parse((await d.docker(['image', 'inspect', 'hello-gcc:1'])).stdout)[0];
  t.is(img.RootFS.Layers.length, 1, 'the final image is the binary alone');
  t.true(img.Size < 5_000_000, `a static hello is small, not a Debian (${img.Size} bytes)`);
});
