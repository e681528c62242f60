import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, run } from '../helpers/daemon';

/**
 * docker-compose 1.29 (Debian's) against berth: a project's default network, services
 * that reach each other by service name through the embedded DNS, and down removing the
 * network.
 */

test('docker-compose: the app reaches redis by its service name over the project network; down removes the network', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  t.is((await d.berth(['image', 'vendor', 'redis', '/usr/bin/redis-server', '/usr/bin/redis-cli'])).code, 0);
  const dir = path.join(d.root, 'proj');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'docker-compose.yml'),
    [
      "version: '3.7'",
      'services:',
      '  redis:',
      '    image: redis',
      "    command: ['redis-server', '--protected-mode', 'no', '--save', '']",
      '  app:',
      '    image: redis',
      '    depends_on: [redis]',
      "    command: ['sh', '-c', 'sleep 600']",
      '',
    ].join('\n'),
  );
  const compose = (...args: string[]) => run('docker-compose', ['-p', 'demo', ...args], { ...d.env, COMPOSE_INTERACTIVE_NO_CLI: '1' }).then((r) => r);
  const up = await compose('-f', path.join(dir, 'docker-compose.yml'), 'up', '-d');
  t.is(up.code, 0, up.stderr);
  t.true((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('demo_default'));
  let pong = '';
  for (let i = 0; i < 50 && pong !== 'PONG'; i++) {
    pong = (await d.docker(['exec', 'demo_app_1', 'redis-cli', '-h', 'redis', 'ping'])).stdout.trim();
    if (pong !== 'PONG') await new Promise((r) => setTimeout(r, 200));
  }
  t.is(pong, 'PONG', 'app reaches redis by its service name');
  const down = await compose('-f', path.join(dir, 'docker-compose.yml'), 'down');
  t.is(down.code, 0, down.stderr);
  t.false((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('demo_default'));
});
