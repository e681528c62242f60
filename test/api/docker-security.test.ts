/**
 * Security and per-container host options through the real docker CLI against berthd:
 * capabilities, --privileged, no-new-privileges, the default seccomp profile, ulimits,
 * sysctls, devices, --tmpfs, --dns/--add-host, random host port 0, and Docker's answer to
 * routes berth does not serve. One daemon for the file; every test is serial (each runs
 * containers on a shared, loaded host).
 */
import test from 'ava';
import * as http from 'node:http';
import { TestDaemon, exec } from '../helpers/daemon';

let d: TestDaemon;

test.before(async () => {
  d = await TestDaemon.start();
});

test.after.always(async () => {
  await d?.stop();
});

/** `docker run --rm ARGS...` that must succeed; its stdout. */
async function runOk(t: { is: (a: unknown, b: unknown, m?: string) => void }, args: string[]): Promise<string> {
  const r = await d.docker(['run', '--rm', ...args]);
  t.is(r.code, 0, `docker run ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function rawRequest(method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.socket, method, path }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.serial('a route berth does not serve answers 404 with Docker\'s body, whatever the method', async (t) => {
  for (const [method, path] of [
    ['GET', '/v1.41/nosuch/endpoint'],
    ['POST', '/v1.41/images/json'], // a path that exists for GET only
    ['PUT', '/containers/abc/nosuch'],
  ]) {
    const r = await rawRequest(method, path);
    t.is(r.status, 404, `${method} ${path}`);
    t.is(JSON.parse(r.body).message, 'page not found', `${method} ${path}`);
  }
});

test.serial('--dns, --dns-search, --dns-option and --add-host (host-gateway too) are written into the container\'s files', async (t) => {
  const out = await runOk(t, [
    '--dns', '192.0.2.53', '--dns', '192.0.2.54', '--dns-search', 'corp.example', '--dns-option', 'ndots:3',
    '--add-host', 'db.local:192.0.2.10', '--add-host', 'host.docker.internal:host-gateway',
    'busybox', 'sh', '-c', 'cat /etc/resolv.conf; echo ---; cat /etc/hosts',
  ]);
  const [resolv, hosts] = out.split('---\n');
  t.deepEqual(resolv.split('\n').filter((l) => /^nameserver /.test(l)), ['nameserver 192.0.2.53', 'nameserver 192.0.2.54']);
  t.regex(resolv, /^search corp\.example$/m);
  t.regex(resolv, /^options ndots:3$/m);
  t.regex(hosts, /^192\.0\.2\.10\tdb\.local$/m);
  const gw = /^(\d+\.\d+\.\d+\.\d+)\thost\.docker\.internal$/m.exec(hosts)?.[1];
  t.truthy(gw, hosts);
  // The gateway is the bridge's own address: the host, as the container reaches it.
  const { stdout } = await exec('ip', ['-4', '-o', 'addr', 'show', 'dev', d.args[d.args.indexOf('--bridge') + 1]]);
  t.true(stdout.includes(` ${gw}/`), `${gw} is the bridge's address: ${stdout}`);

  // `--dns-search .` means no search line at all.
  const none = await runOk(t, ['--dns-search', '.', 'busybox', 'cat', '/etc/resolv.conf']);
  t.notRegex(none, /^search /m);
});

test.serial('bad --dns and --add-host values are refused at create, typed', async (t) => {
  for (const args of [['--add-host', 'nohost'], ['--add-host', 'x:not-an-ip']]) {
    const r = await d.docker(['create', ...args, 'busybox', 'true']);
    t.not(r.code, 0, args.join(' '));
  }
  // The docker CLI checks those itself; through the API berth refuses them with INVALID_ARGUMENT.
  for (const HostConfig of [{ Dns: ['nope'] }, { ExtraHosts: ['x:999.1.1.1'] }, { DnsSearch: ['bad domain'] }]) {
    const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig }));
    t.is((e as { code?: string }).code, 'INVALID_ARGUMENT', JSON.stringify(HostConfig));
  }
});

test.serial('-p 0:6379 publishes redis on a random host port that answers (testcontainers sends HostPort "0")', async (t) => {
  t.timeout(120_000);
  const v = await d.berth(['image', 'vendor', 'redis', '/usr/bin/redis-server', '/usr/bin/redis-cli']);
  t.is(v.code, 0, v.stderr);
  const r = await d.docker(['run', '-d', '--name', 'r0', '-p', '0:6379', 'redis', 'redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', '']);
  t.is(r.code, 0, r.stderr);
  t.teardown(() => d.docker(['rm', '-f', 'r0']));
  const line = (await d.docker(['port', 'r0', '6379'])).stdout.split('\n')[0];
  const port = Number(/:(\d+)$/.exec(line)?.[1]);
  t.true(port > 0 && port !== 6379, `a random port: ${line}`);
  t.is((await d.docker(['inspect', '-f', '{{json .HostConfig.PortBindings}}', 'r0'])).stdout.trim(), '{"6379/tcp":[{"HostIp":"","HostPort":"0"}]}');
  const deadline = Date.now() + 15_000;
  let pong = '';
  while (Date.now() < deadline && pong !== 'PONG') {
    pong = (await exec('/usr/bin/redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping'], { timeout: 5000 }).catch(() => ({ stdout: '' }))).stdout.trim();
    if (pong !== 'PONG') await new Promise((res) => setTimeout(res, 200));
  }
  t.is(pong, 'PONG');
});
