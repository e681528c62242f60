import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import { TestDaemon } from '../helpers/daemon';
import { runCommand } from '../helpers/proc';
import { dockerPy } from '../helpers/dockerpy';
import { writeContext } from './helpers';

/**
 * POST /build from the other clients users build with: docker-py's images.build,
 * dockerode's buildImage, docker-compose 1.29's `build:`, testcontainers'
 * GenericContainer.fromDockerfile, and berth's own `berth build`. One daemon for the file.
 */

let d: TestDaemon;
let work: string;
test.before(async () => {
  d = await TestDaemon.start();
  work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-buildc-'));
});
test.after.always(async () => {
  await d?.stop();
  if (work) await fs.promises.rm(work, { recursive: true, force: true });
});

/** A context directory under this file's work dir (a value of null makes a directory). */
const context = (name: string, files: Record<string, string | null>): string => writeContext(work, name, files);

test('docker-py images.build builds with buildargs and labels and returns the image and the log', async (t) => {
  const dir = context('py', { Dockerfile: 'FROM busybox\nARG WHO\nRUN echo "hello $WHO" > /greeting\nCMD ["cat", "/greeting"]\n' });
  const r = await dockerPy<{ id: string; tags: string[]; labels: Record<string, string>; log: string; out: string }>(
    d,
    [
      `img, logs = client.images.build(path=${JSON.stringify(dir)}, tag='py:1', buildargs={'WHO': 'python'}, labels={'made.by': 'docker-py'}, rm=True)`,
      "log = ''.join(c.get('stream', '') for c in logs)",
      "ran = client.containers.run('py:1', remove=True).decode()",
      "out({'id': img.id, 'tags': img.tags, 'labels': img.labels, 'log': log, 'out': ran})",
    ].join('\n'),
  );
  t.regex(r.id, /^sha256:[0-9a-f]{64}$/);
  t.deepEqual(r.tags, ['py:1']);
  t.deepEqual(r.labels, { 'made.by': 'docker-py' });
  t.regex(r.log, /Successfully built/);
  t.is(r.out, 'hello python\n');

  // A failing build raises docker-py's BuildError with the step's message.
  const bad = context('py-bad', { Dockerfile: 'FROM busybox\nRUN exit 5\n' });
  const e = await dockerPy<{ err: string; kind: string }>(
    d,
    [
      'try:',
      `    client.images.build(path=${JSON.stringify(bad)})`,
      "    out({'err': '', 'kind': 'none'})",
      'except docker.errors.BuildError as e:',
      "    out({'err': str(e), 'kind': type(e).__name__})",
    ].join('\n'),
  );
  t.is(e.kind, 'BuildError');
  t.regex(e.err, /returned a non-zero code: 5/);
});

test('dockerode buildImage streams the build; followProgress sees the aux ID', async (t) => {
  const dir = context('dockerode', { Dockerfile: 'FROM busybox\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n', 'hello.txt': 'from dockerode\n' });
  const docker = new Docker({ socketPath: d.socket });
  const stream = await docker.buildImage({ context: dir, src: ['Dockerfile', 'hello.txt'] }, { t: 'dockerode:1' });
  const events = await new Promise<Array<{ stream?: string; aux?: { ID: string }; error?: string }>>((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, res: Array<{ stream?: string; aux?: { ID: string } }>) => (err ? reject(err) : resolve(res))),
  );
  t.falsy(events.find((e) => e.error));
  const id = events.find((e) => e.aux)?.aux?.ID;
  t.regex(id ?? '', /^sha256:[0-9a-f]{64}$/);
  t.is((await docker.getImage('dockerode:1').inspect()).Id, id as string);
});

test('docker-compose 1.29 builds a service from its build: section, with its args, under the image name it gives', async (t) => {
  const dir = context('compose', {
    'docker-compose.yml': [
      'version: "3.7"',
      'services:',
      '  app:',
      '    build:',
      '      context: ./app',
      '      args:',
      '        FLAVOUR: compose',
      '    image: composed:1',
      '    command: ["cat", "/flavour"]',
      '',
    ].join('\n'),
    'app/Dockerfile': 'FROM busybox\nARG FLAVOUR\nRUN echo "$FLAVOUR" > /flavour\n',
  });
  const env = { ...d.env, COMPOSE_INTERACTIVE_NO_CLI: '1', DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
  const compose = (...args: string[]) => runCommand('docker-compose', ['-p', 'buildtest', '-f', path.join(dir, 'docker-compose.yml'), ...args], { env });
  const b = await compose('build');
  t.is(b.code, 0, b.stderr + b.stdout);
  t.regex(b.stdout + b.stderr, /Successfully tagged composed:1/);
  // The image compose built, with the build arg from the compose file.
  const ran = await d.docker(['run', '--rm', 'composed:1', 'cat', '/flavour']);
  t.is(ran.stdout, 'compose\n', ran.stderr);
});

test('testcontainers GenericContainer.fromDockerfile builds the image and starts a container from it', async (t) => {
  const dir = context('tc', { Dockerfile: 'FROM busybox\nRUN echo tc-built > /marker\nCMD ["sleep", "300"]\n' });
  process.env.DOCKER_HOST = d.host;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  const tc = await import('testcontainers');
  const image = await tc.GenericContainer.fromDockerfile(dir).build('tc-built:1', { deleteOnExit: false });
  const c = await image.start();
  try {
    const r = await c.exec(['cat', '/marker']);
    t.is(r.output, 'tc-built\n');
  } finally {
    await c.stop();
  }
});

test('berth build: -t, -f, --build-arg, --target and a Dockerfile on standard input', async (t) => {
  const dir = context('berth-cli', {
    'docker/build.Dockerfile': 'FROM busybox AS one\nARG V=default\nRUN echo "$V" > /v\nFROM one AS two\nRUN echo two >> /v\n',
  });
  const r = await d.berth(['build', '-t', 'cli:1', '-f', path.join(dir, 'docker/build.Dockerfile'), '--build-arg', 'V=given', '--target', 'one', dir]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Step 3\/3 : RUN echo "\$V" > \/v/);
  t.notRegex(r.stdout, /echo two/);
  t.is((await d.docker(['run', '--rm', 'cli:1', 'cat', '/v'])).stdout, 'given\n');

  const q = await d.berth(['build', '-q', '-'], { input: 'FROM busybox\nRUN exit 9\n' });
  t.is(q.code, 9);
  t.regex(q.stderr, /returned a non-zero code: 9/);
});
