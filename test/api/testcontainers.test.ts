import test from 'ava';
import * as net from 'node:net';
import * as tarStream from 'tar-stream';
import type { Readable } from 'node:stream';
import { TestDaemon } from '../helpers/daemon';
import { loadImages } from '../helpers/images';

/**
 * testcontainers-node (11.x: it runs on berth's Node) against berthd, as a project's test
 * suite would use it: its Docker client is pointed at a test daemon through DOCKER_HOST and
 * its reaper (ryuk, an image from a registry) stays off. Images are local: busybox, and a
 * Redis vendored from the host's binaries (once per run, test/helpers/images.ts).
 */

let d: TestDaemon;
let tc: typeof import('testcontainers');
test.before(async () => {
  d = await TestDaemon.start();
  await loadImages(d, 'redis');
  // Read once, when testcontainers makes its client: set before it is loaded.
  process.env.DOCKER_HOST = d.host;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  tc = await import('testcontainers');
});
test.after.always(async () => {
  await d?.stop();
});

/** One request/response over TCP: what a client of the containerized server does. */
function ask(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(line));
    let got = '';
    s.on('data', (b) => {
      got += b.toString();
      if (got.includes('\r\n')) {
        s.end();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error(`no answer on port ${port}`)));
  });
}

async function untar(stream: NodeJS.ReadableStream): Promise<Record<string, string>> {
  const ex = tarStream.extract();
  const files: Record<string, string> = {};
  ex.on('entry', (h, body, next) => {
    const parts: Buffer[] = [];
    body.on('data', (c: unknown) => {
      parts.push(c as Buffer);
    });
    body.on('end', () => {
      if (h.type === 'file') files[h.name] = Buffer.concat(parts).toString();
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  (stream as Readable).pipe(ex);
  await done;
  return files;
}

test.serial('a GenericContainer with a random host port, started once a log line shows: a client reaches Redis through it', async (t) => {
  const c = await new tc.GenericContainer('redis')
    .withCommand(['redis-server', '--port', '6379', '--save', '', '--protected-mode', 'no'])
    .withExposedPorts(6379)
    .withWaitStrategy(tc.Wait.forLogMessage(/Ready to accept connections/))
    .start();
  t.teardown(() => c.stop().then(() => undefined, () => undefined));
  const port = c.getMappedPort(6379);
  t.true(port > 0 && port !== 6379, `a random port: ${port}`);
  t.is(await ask(port, 'PING\r\n'), '+PONG\r\n');
  const inspect = JSON.parse((await d.docker(['inspect', c.getId()])).stdout)[0];
  t.is(inspect.NetworkSettings.Ports['6379/tcp'][0].HostPort, String(port));
  await c.stop();
  t.is((await d.docker(['ps', '-a', '-q', '--filter', `id=${c.getId()}`])).stdout.trim(), '', 'stop removes it');
});

test.serial("the default wait (the host port answers outside and is bound inside) and Wait.forHttp on a busybox httpd", async (t) => {
  const c = await new tc.GenericContainer('busybox')
    .withCommand(['httpd', '-f', '-p', '8080', '-h', '/www'])
    .withCopyContentToContainer([{ content: 'hello from berth\n', target: '/www/index.html' }])
    .withExposedPorts(8080)
    .start();
  t.teardown(() => c.stop({ timeout: 1000 }).then(() => undefined, () => undefined));
  const res = await fetch(`http://${c.getHost()}:${c.getMappedPort(8080)}/index.html`);
  t.is(res.status, 200);
  t.is(await res.text(), 'hello from berth\n');

  const h = await new tc.GenericContainer('busybox')
    .withCommand(['httpd', '-f', '-p', '8080', '-h', '/www'])
    .withCopyContentToContainer([{ content: 'ok\n', target: '/www/health' }])
    .withExposedPorts(8080)
    .withWaitStrategy(tc.Wait.forHttp('/health', 8080).forStatusCode(200))
    .start();
  t.teardown(() => h.stop({ timeout: 1000 }).then(() => undefined, () => undefined));
  t.is(await (await fetch(`http://${h.getHost()}:${h.getMappedPort(8080)}/health`)).text(), 'ok\n');
});

test.serial('copyContentToContainer before and after start, copyArchiveFromContainer, and exec', async (t) => {
  const c = await new tc.GenericContainer('busybox')
    .withCommand(['sleep', '1000'])
    .withCopyContentToContainer([{ content: 'made before start\n', target: '/etc/app/before.txt' }])
    .start();
  t.teardown(() => c.stop({ timeout: 1000 }).then(() => undefined, () => undefined));
  await c.copyContentToContainer([{ content: 'copied while running\n', target: '/data/after.txt', mode: 0o640 }]);

  const cat = await c.exec(['cat', '/etc/app/before.txt', '/data/after.txt']);
  t.is(cat.exitCode, 0, cat.stderr);
  t.is(cat.stdout, 'made before start\ncopied while running\n');
  t.is((await c.exec(['stat', '-c', '%a', '/data/after.txt'])).stdout.trim(), '640');

  const r = await c.exec(['sh', '-c', 'echo to-out; echo to-err >&2; exit 3']);
  t.is(r.exitCode, 3);
  t.is(r.stdout, 'to-out\n');
  t.is(r.stderr, 'to-err\n');

  await c.exec(['sh', '-c', 'mkdir -p /out && echo report > /out/r.txt']);
  const files = await untar(await c.copyArchiveFromContainer('/out'));
  t.deepEqual(files, { 'out/r.txt': 'report\n' });
});

test.serial('Wait.forHealthCheck() waits for healthy, and fails the start on unhealthy', async (t) => {
  const c = await new tc.GenericContainer('busybox')
    .withCommand(['sh', '-c', 'sleep 2; touch /tmp/ok; exec sleep 1000'])
    .withHealthCheck({ test: ['CMD-SHELL', 'test -e /tmp/ok'], interval: 300, retries: 100 })
    .withWaitStrategy(tc.Wait.forHealthCheck())
    .withStartupTimeout(60_000)
    .start();
  t.teardown(() => c.stop({ timeout: 1000 }).then(() => undefined, () => undefined));
  t.is((await c.exec(['test', '-e', '/tmp/ok'])).exitCode, 0, 'started only once the check passed');
  const h = JSON.parse((await d.docker(['inspect', '-f', '{{json .State.Health}}', c.getId()])).stdout);
  t.is(h.Status, 'healthy');

  const failing = new tc.GenericContainer('busybox')
    .withCommand(['sleep', '1000'])
    .withHealthCheck({ test: ['CMD', 'false'], interval: 300, retries: 2 })
    .withWaitStrategy(tc.Wait.forHealthCheck())
    .withStartupTimeout(60_000);
  await t.throwsAsync(failing.start(), { message: /Health check failed: unhealthy/ });
});
