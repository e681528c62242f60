import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { loadImages } from '../helpers/images';
import { runCommand } from '../helpers/proc';
import { eventually } from '../helpers/eventually';

/**
 * docker-compose 1.29 (Debian's) against one berth daemon: a project's default network with
 * services reaching each other by service name through the embedded DNS; a named volume
 * kept across down/up and removed by down -v; custom networks with aliases, an internal
 * network, an external one, depends_on and scale.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
  await loadImages(d, 'redis');
});
test.after.always(async () => {
  await d?.stop();
});

/** Write a project's docker-compose.yml; returns a runner of docker-compose for it. */
function project(name: string, yml: string[]): (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = path.join(d.root, `proj-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'docker-compose.yml');
  fs.writeFileSync(file, [...yml, ''].join('\n'));
  return (...args) => runCommand('docker-compose', ['-p', name, '-f', file, ...args], { env: { ...d.env, COMPOSE_INTERACTIVE_NO_CLI: '1' } });
}

async function ok(t: { is: (a: unknown, b: unknown, m?: string) => void }, r: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const out = await r;
  t.is(out.code, 0, out.stderr);
  return out.stdout.trim();
}

/** busybox nslookup's A answers. */
function addresses(out: string): string[] {
  return out
    .split('\n')
    .slice(2)
    .map((l) => /^Address:\s+(\d+\.\d+\.\d+\.\d+)$/.exec(l.trim())?.[1])
    .filter((x): x is string => !!x)
    .sort();
}

test.serial('docker-compose: the app reaches redis by its service name over the project network; down removes the network', async (t) => {
  const compose = project('demo', [
    "version: '3.7'",
    'services:',
    '  redis:',
    '    image: redis',
    "    command: ['redis-server', '--protected-mode', 'no', '--save', '']",
    '  app:',
    '    image: redis',
    '    depends_on: [redis]',
    "    command: ['sh', '-c', 'sleep 600']",
  ]);
  await ok(t, compose('up', '-d'));
  t.true((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('demo_default'));
  await eventually(async () => (await d.docker(['exec', 'demo_app_1', 'redis-cli', '-h', 'redis', 'ping'])).stdout.trim() === 'PONG', { message: 'app to reach redis by its service name' });
  // depends_on: redis was started first.
  const started = async (c: string) => Date.parse((await d.docker(['inspect', '-f', '{{.State.StartedAt}}', c])).stdout.trim());
  t.true((await started('demo_redis_1')) <= (await started('demo_app_1')), 'depends_on starts redis before app');
  await ok(t, compose('down'));
  t.false((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('demo_default'));
});

test.serial('docker-compose: a named volume keeps its data across down and up; down -v removes it', async (t) => {
  const compose = project('vol', [
    "version: '3.7'",
    'services:',
    '  db:',
    '    image: busybox',
    "    command: ['sh', '-c', 'test -f /data/seed || cat /proc/sys/kernel/random/uuid > /data/seed; sleep 600']",
    '    volumes: [data:/data]',
    'volumes:',
    '  data: {}',
  ]);
  await ok(t, compose('up', '-d'));
  const seed = () => eventually(async () => (await d.docker(['exec', 'vol_db_1', 'cat', '/data/seed'])).stdout.trim(), { message: 'the seed file' });
  const first = await seed();
  await ok(t, compose('down'));
  t.true((await d.docker(['volume', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('vol_data'), 'down keeps the named volume');
  await ok(t, compose('up', '-d'));
  t.is(await seed(), first, 'the data survived down and up');
  await ok(t, compose('down', '-v'));
  t.false((await d.docker(['volume', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('vol_data'), 'down -v removes it');
});

test.serial('docker-compose: custom networks with aliases, an internal network, an external network, and scale', async (t) => {
  await ok(t, d.docker(['network', 'create', 'outside']));
  const compose = project('nets', [
    "version: '3.7'",
    'services:',
    '  db:',
    '    image: busybox',
    "    command: ['httpd', '-f', '-p', '80', '-h', '/etc']",
    '    networks:',
    '      back:',
    '        aliases: [database]',
    '  web:',
    '    image: busybox',
    "    command: ['sleep', '600']",
    '    depends_on: [db]',
    '    networks: [front, back]',
    '  edge:',
    '    image: busybox',
    "    command: ['sleep', '600']",
    '    networks: [front, shared]',
    'networks:',
    '  front: {}',
    '  back:',
    '    internal: true',
    '  shared:',
    '    external: true',
    '    name: outside',
  ]);
  await ok(t, compose('up', '-d', '--scale', 'web=2'));
  const dbIp = await ok(t, d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.nets_back.IPAddress}}', 'nets_db_1']));
  // The alias on back, from web (on back): db's address there.
  t.deepEqual(addresses((await d.docker(['exec', 'nets_web_1', 'nslookup', 'database'])).stdout), [dbIp]);
  t.is(await ok(t, d.docker(['exec', 'nets_web_2', 'wget', '-q', '-O', '-', 'http://database/hostname'])), (await ok(t, d.docker(['inspect', '-f', '{{.Id}}', 'nets_db_1']))).slice(0, 12));
  // scale: the service name answers with both replicas.
  const webIps = await Promise.all(['nets_web_1', 'nets_web_2'].map((c) => ok(t, d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.nets_back.IPAddress}}', c]))));
  t.deepEqual(addresses((await d.docker(['exec', 'nets_db_1', 'nslookup', 'web'])).stdout), webIps.sort());
  // back is internal: db, on it alone, has no way out.
  t.false((await ok(t, d.docker(['exec', 'nets_db_1', 'ip', 'route']))).includes('default'));
  t.true((await ok(t, d.docker(['network', 'inspect', '-f', '{{.Internal}}', 'nets_back']))) === 'true');
  // edge is on front and on the external network; it does not see db (on back only).
  t.deepEqual(Object.keys(JSON.parse(await ok(t, d.docker(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'nets_edge_1'])))).sort(), ['nets_front', 'outside']);
  t.deepEqual(addresses((await d.docker(['exec', 'nets_edge_1', 'nslookup', 'database'])).stdout), []);
  await ok(t, compose('down'));
  const left = (await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n');
  t.false(left.includes('nets_front') || left.includes('nets_back'), 'down removes the project networks');
  t.true(left.includes('outside'), 'down leaves the external network');
  await ok(t, d.docker(['network', 'rm', 'outside']));
});
