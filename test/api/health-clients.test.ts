import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { dockerPy } from '../helpers/dockerpy';
import { runCommand } from '../helpers/proc';

/**
 * Health checks as third-party clients use them against berthd: docker-py (Debian's
 * python3-docker) and docker-compose 1.29's `depends_on: condition: service_healthy`.
 * One daemon for the file; each test uses names of its own.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

test('docker-py: a healthcheck given to containers.run goes starting -> healthy, a failing one unhealthy; health filter and events', async (t) => {
  const r = await dockerPy<{ first: string; healthy: Record<string, unknown>; unhealthy: Record<string, unknown>; filtered: string[]; events: string[]; config: unknown }>(
    d,
    `
import time
since = int(time.time()) - 1
def wait(c, want):
    deadline = time.time() + 60
    while time.time() < deadline:
        c.reload()
        h = c.attrs['State'].get('Health')
        if h and h['Status'] == want:
            return h
        time.sleep(0.2)
    raise Exception('%s did not become %s: %r' % (c.name, want, c.attrs['State'].get('Health')))

ok = client.containers.run('busybox', ['sleep', '1000'], detach=True, name='py-ok',
    healthcheck={'test': ['CMD-SHELL', 'test -e /tmp/ready'], 'interval': 300000000, 'retries': 2, 'start_period': 600000000000})
ok.reload()
first = ok.attrs['State']['Health']['Status']
config = ok.attrs['Config']['Healthcheck']
ok.exec_run(['touch', '/tmp/ready'])
healthy = wait(ok, 'healthy')
bad = client.containers.run('busybox', ['sleep', '1000'], detach=True, name='py-bad',
    healthcheck={'test': ['CMD', 'false'], 'interval': 300000000, 'retries': 2})
unhealthy = wait(bad, 'unhealthy')
filtered = sorted(c.name for c in client.containers.list(filters={'health': 'healthy', 'name': 'py-'}))
events = [e['Actor']['Attributes']['name'] + ' ' + e['Action'] for e in api.events(since=since, until=int(time.time()) + 1, filters={'event': 'health_status', 'container': ['py-ok', 'py-bad']}, decode=True)]
ok.remove(force=True)
bad.remove(force=True)
out({'first': first, 'healthy': healthy, 'unhealthy': unhealthy, 'filtered': filtered, 'events': events, 'config': config})
`,
  );
  t.is(r.first, 'starting');
  t.deepEqual(r.config, { Test: ['CMD-SHELL', 'test -e /tmp/ready'], Interval: 300_000_000, Retries: 2, StartPeriod: 600_000_000_000 });
  t.is(r.healthy.FailingStreak, 0);
  const okLog = r.healthy.Log as Array<{ ExitCode: number }>;
  t.is(okLog[okLog.length - 1].ExitCode, 0);
  t.true((r.unhealthy.FailingStreak as number) >= 2);
  t.true((r.unhealthy.Log as Array<{ ExitCode: number }>).every((l) => l.ExitCode === 1));
  t.deepEqual(r.filtered, ['py-ok']);
  t.deepEqual(r.events.sort(), ['py-bad health_status: unhealthy', 'py-ok health_status: healthy']);
});

/** Run docker-compose 1.29 on `dir`'s docker-compose.yml against the daemon. */
function compose(dir: string, args: string[]): ReturnType<typeof runCommand> {
  return runCommand('docker-compose', ['-f', path.join(dir, 'docker-compose.yml'), ...args], { env: d.env });
}

test("docker-compose 1.29: depends_on condition service_healthy starts the app once the db is healthy, and refuses an unhealthy db", async (t) => {
  const dir = path.join(d.root, 'compose');
  fs.mkdirSync(dir);
  // network_mode: bridge per service (user-defined networks are not there yet).
  fs.writeFileSync(
    path.join(dir, 'docker-compose.yml'),
    `version: "2.4"
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 1000"]
    network_mode: bridge
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: 300ms
      retries: 100
  app:
    image: busybox
    command: ["sleep", "1000"]
    network_mode: bridge
    depends_on:
      db:
        condition: service_healthy
  broken:
    image: busybox
    command: ["sleep", "1000"]
    network_mode: bridge
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 300ms
      retries: 1
  waiter:
    image: busybox
    command: ["sleep", "1000"]
    network_mode: bridge
    depends_on:
      broken:
        condition: service_healthy
`,
  );
  t.teardown(() => compose(dir, ['-p', 'hc', 'down', '-t', '1']).then(() => undefined));
  const up = await compose(dir, ['-p', 'hc', 'up', '-d', 'app']);
  t.is(up.code, 0, up.stderr);
  const inspect = async (name: string) => JSON.parse((await d.docker(['inspect', name])).stdout)[0];
  const db = await inspect('hc_db_1');
  const app = await inspect('hc_app_1');
  t.is(db.State.Health.Status, 'healthy');
  t.is(app.State.Status, 'running');
  const firstOk = (db.State.Health.Log as Array<{ ExitCode: number; End: string }>).find((l) => l.ExitCode === 0);
  t.truthy(firstOk, 'the db passed a check');
  t.true(Date.parse(app.State.StartedAt) >= Date.parse(firstOk!.End), 'the app started only after the db was healthy');

  const refused = await compose(dir, ['-p', 'hc', 'up', '-d', 'waiter']);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /unhealthy/);
  t.is((await inspect('hc_broken_1')).State.Health.Status, 'unhealthy');
  const waiter = (await d.docker(['ps', '-a', '--filter', 'name=hc_waiter', '--format', '{{.State}}'])).stdout.trim();
  t.true(waiter === '' || waiter === 'created', `the waiter never ran (${waiter})`);
});
