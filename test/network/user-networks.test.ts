import test from 'ava';
import { TestDaemon } from '../helpers/daemon';
import { linkExists } from './netutil';
import { userVethName } from '../../src/network/network';

/**
 * User-defined networks with the real docker CLI against one daemon: the network verbs,
 * run --network/--network-alias/--ip, DNS by name and alias through 127.0.0.11, isolation
 * between networks, internal networks, hot-plug connect/disconnect, legacy links on the
 * default bridge, and the repair of a running container's deleted veth at daemon start.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

async function docker(t: { is: (a: unknown, b: unknown, m?: string) => void }, ...args: string[]): Promise<string> {
  const r = await d.docker(args);
  t.is(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

const HTTPD = ['busybox', 'httpd', '-f', '-p', '80', '-h', '/etc'];

/** busybox nslookup's A answers for `name`, from a container (one-off or exec). */
function addresses(out: string): string[] {
  return out
    .split('\n')
    .slice(2) // the server lines
    .map((l) => /^Address:\s+(\d+\.\d+\.\d+\.\d+)$/.exec(l.trim())?.[1])
    .filter((x): x is string => !!x);
}

test.serial('network create/ls/inspect with IPAM, run --network --network-alias --ip, DNS by name, alias and short id via 127.0.0.11', async (t) => {
  await docker(t, 'network', 'create', '--subnet', '10.197.10.0/24', '--gateway', '10.197.10.1', '--ip-range', '10.197.10.128/25', '--label', 'tier=front', 'front');
  const ls = await docker(t, 'network', 'ls', '--filter', 'label=tier=front', '--format', '{{.Name}} {{.Driver}}');
  t.is(ls, 'front bridge');
  const [n] = JSON.parse(await docker(t, 'network', 'inspect', 'front'));
  t.deepEqual(n.IPAM.Config, [{ Subnet: '10.197.10.0/24', Gateway: '10.197.10.1', IPRange: '10.197.10.128/25' }]);
  t.regex(n.Options['com.docker.network.bridge.name'], /^br-[0-9a-f]{12}$/);
  t.deepEqual(n.Labels, { tier: 'front' });

  const id = await docker(t, 'run', '-d', '--name', 'web', '--network', 'front', '--network-alias', 'www', '--ip', '10.197.10.50', ...HTTPD);
  const auto = await docker(t, 'run', '-d', '--name', 'other', '--network', 'front', 'busybox', 'sleep', '600');
  const otherIp = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'other');
  t.true(otherIp.startsWith('10.197.10.') && Number(otherIp.split('.')[3]) >= 128, `automatic addresses come from the IP range: ${otherIp}`);
  t.is(await docker(t, 'exec', 'other', 'cat', '/etc/resolv.conf').then((s) => s.split('\n')[0]), 'nameserver 127.0.0.11');
  for (const name of ['web', 'www', id.slice(0, 12)]) {
    const r = await d.docker(['exec', 'other', 'nslookup', name]);
    t.deepEqual(addresses(r.stdout), ['10.197.10.50'], `nslookup ${name}: ${r.stdout}${r.stderr}`);
  }
  t.is(await docker(t, 'exec', 'other', 'wget', '-q', '-O', '-', 'http://www/hostname'), id.slice(0, 12));
  // Reverse lookup, and a name nobody has.
  const ptr = await d.docker(['exec', 'other', 'nslookup', '10.197.10.50']);
  t.regex(ptr.stdout, /name = web/, ptr.stdout + ptr.stderr);
  const none = await d.docker(['exec', 'other', 'nslookup', 'nosuchname']);
  t.not(none.code, 0);
  t.regex(none.stdout + none.stderr, /NXDOMAIN/);
  const [n2] = JSON.parse(await docker(t, 'network', 'inspect', 'front'));
  t.deepEqual(Object.values(n2.Containers).map((c) => (c as { Name: string }).Name).sort(), ['other', 'web']);
  t.is((await d.docker(['network', 'rm', 'front'])).code === 0, false, 'a network with containers on it is not removed');
});

test.serial('isolation between networks; connect hot-plugs a running container, disconnect takes it away; DNS follows at once', async (t) => {
  await docker(t, 'network', 'create', 'back');
  await docker(t, 'run', '-d', '--name', 'db', '--network', 'back', ...HTTPD);
  const dbIp = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.back.IPAddress}}', 'db');
  // `other` (on front) cannot reach db (on back), by address or by name.
  const no = await d.docker(['exec', 'other', 'timeout', '3', 'wget', '-q', '-O', '-', `http://${dbIp}/hostname`]);
  t.not(no.code, 0, 'a container on another network is not reachable');
  const noName = await d.docker(['exec', 'other', 'nslookup', 'db']);
  t.deepEqual(addresses(noName.stdout), [], 'names of containers on networks not shared are not answered');

  await docker(t, 'network', 'connect', '--alias', 'database', 'back', 'other');
  const i = JSON.parse(await docker(t, 'inspect', 'other'))[0];
  t.deepEqual(Object.keys(i.NetworkSettings.Networks).sort(), ['back', 'front']);
  t.true(i.NetworkSettings.Networks.back.Aliases.includes('database'));
  t.is(await docker(t, 'exec', 'other', 'wget', '-q', '-O', '-', 'http://db/hostname'), (await docker(t, 'inspect', '-f', '{{.Id}}', 'db')).slice(0, 12));
  const fromDb = await d.docker(['exec', 'db', 'nslookup', 'database']);
  t.deepEqual(addresses(fromDb.stdout), [i.NetworkSettings.Networks.back.IPAddress], fromDb.stdout);

  await docker(t, 'network', 'disconnect', 'back', 'other');
  t.false(await linkExists(userVethName(i.Id, i.NetworkSettings.Networks.back.NetworkID)));
  const gone = await d.docker(['exec', 'db', 'nslookup', 'database']);
  t.deepEqual(addresses(gone.stdout), [], 'a disconnected container is no longer answered for');
  const cut = await d.docker(['exec', 'other', 'timeout', '3', 'wget', '-q', '-O', '-', `http://${dbIp}/hostname`]);
  t.not(cut.code, 0);
});

test.serial('an internal network has no way out; published ports work on a user-defined network', async (t) => {
  await docker(t, 'network', 'create', '--internal', 'sealed');
  await docker(t, 'run', '-d', '--name', 'inside', '--network', 'sealed', 'busybox', 'sleep', '600');
  const gw = (await docker(t, 'network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', 'front'));
  const out = await d.docker(['exec', 'inside', 'timeout', '3', 'wget', '-q', '-O', '-', `http://${gw}:9/`]);
  t.not(out.code, 0);
  t.regex((await docker(t, 'exec', 'inside', 'ip', 'route')), /^(?!default)/, 'no default route');
  t.false((await docker(t, 'exec', 'inside', 'ip', 'route')).includes('default'));

  await docker(t, 'run', '-d', '--name', 'pub', '--network', 'front', '-p', '127.0.0.1::80', ...HTTPD);
  const port = (await docker(t, 'port', 'pub', '80')).split(':').pop();
  const r = await d.docker(['run', '--rm', '--network', 'host', 'busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}/hostname`]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), (await docker(t, 'inspect', '-f', '{{.Id}}', 'pub')).slice(0, 12));
});

test.serial('--link on the default bridge writes the linked container into /etc/hosts', async (t) => {
  await docker(t, 'run', '-d', '--name', 'cache', ...HTTPD);
  const ip = await docker(t, 'inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'cache');
  await docker(t, 'run', '-d', '--name', 'client', '--link', 'cache:kv', 'busybox', 'sleep', '600');
  t.regex(await docker(t, 'exec', 'client', 'cat', '/etc/hosts'), new RegExp(`^${ip.replace(/\./g, '\\.')}\\tkv cache$`, 'm'));
  t.is(await docker(t, 'exec', 'client', 'wget', '-q', '-O', '-', 'http://kv/hostname'), (await docker(t, 'inspect', '-f', '{{.Id}}', 'cache')).slice(0, 12));
  const bad = await d.docker(['run', '-d', '--link', 'nosuch:x', 'busybox', 'true']);
  t.not(bad.code, 0);
});

test.serial('--link on the default bridge gives the process Docker\'s link env vars; the container\'s own Env wins', async (t) => {
  await docker(t, 'run', '-d', '--name', 'kvdb', '-e', 'FOO=bar', '--expose', '6379', '--expose', '53/udp', '--expose', '53', 'busybox', 'sleep', '1000');
  const ip = await docker(t, 'inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'kvdb');
  const env = (await docker(t, 'run', '--rm', '--name', 'app', '--link', 'kvdb:my-redis', '-e', 'MY_REDIS_ENV_FOO=mine', 'busybox', 'env')).split('\n');
  const want = [
    'MY_REDIS_NAME=/app/my-redis',
    `MY_REDIS_PORT=tcp://${ip}:53`,
    `MY_REDIS_PORT_53_TCP=tcp://${ip}:53`,
    `MY_REDIS_PORT_53_UDP=udp://${ip}:53`,
    `MY_REDIS_PORT_53_UDP_ADDR=${ip}`,
    'MY_REDIS_PORT_53_UDP_PORT=53',
    'MY_REDIS_PORT_53_UDP_PROTO=udp',
    `MY_REDIS_PORT_6379_TCP=tcp://${ip}:6379`,
    `MY_REDIS_PORT_6379_TCP_ADDR=${ip}`,
    'MY_REDIS_PORT_6379_TCP_PORT=6379',
    'MY_REDIS_PORT_6379_TCP_PROTO=tcp',
  ];
  for (const w of want) t.true(env.includes(w), `${w} in ${env.join(' ')}`);
  t.true(env.includes('MY_REDIS_ENV_FOO=mine'), 'the container\'s own Env wins');
  t.false(env.includes('MY_REDIS_ENV_FOO=bar'));
  t.false(env.some((e) => e.startsWith('MY_REDIS_ENV_PATH=')), 'PATH is not passed on');
  t.false((await docker(t, 'run', '--rm', 'busybox', 'env')).includes('MY_REDIS'), 'no link, no link vars');
  const plain = (await docker(t, 'run', '--rm', '--link', 'kvdb:redis', 'busybox', 'env')).split('\n');
  t.true(plain.includes('REDIS_ENV_FOO=bar'));
  t.true(plain.some((e) => /^REDIS_NAME=\/[a-z]+_[a-z]+\/redis$/.test(e)), plain.join(' '));
});

test.serial('a running container whose veth was deleted by hand answers again after berthd restarts, at the same address', async (t) => {
  const i = JSON.parse(await docker(t, 'inspect', 'web'))[0];
  const ep = i.NetworkSettings.Networks.front;
  const veth = userVethName(i.Id, ep.NetworkID);
  t.true(await linkExists(veth));
  await d.terminate(); // containers live on
  await d.docker(['version']).catch(() => undefined);
  const { execFile } = await import('node:child_process');
  await new Promise((res) => execFile('ip', ['link', 'del', 'dev', veth], res));
  t.false(await linkExists(veth));
  await d.restart();
  t.true(await linkExists(veth), 'the veth is back');
  t.is(await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web'), ep.IPAddress);
  const got = await d.docker(['exec', 'other', 'wget', '-q', '-O', '-', `http://${ep.IPAddress}/hostname`]);
  t.is(got.stdout.trim(), i.Id.slice(0, 12), `${got.stderr}\n${d.log().split('\n').filter((l) => /network|dns/i.test(l)).slice(-8).join('\n')}`);
});

test.serial('network rm, prune and the refusals: predefined networks, IPv6, overlapping subnets, unknown drivers', async (t) => {
  t.not((await d.docker(['network', 'rm', 'bridge'])).code, 0);
  t.not((await d.docker(['network', 'create', '--ipv6', 'v6'])).code, 0);
  t.not((await d.docker(['network', 'create', '--subnet', '10.197.10.0/25', 'overlap'])).code, 0);
  t.not((await d.docker(['network', 'create', '--driver', 'overlay', 'ov'])).code, 0);
  t.not((await d.docker(['network', 'create', 'front'])).code, 0, 'a name twice');
  await docker(t, 'network', 'create', 'spare');
  await docker(t, 'rm', '-f', 'inside');
  const pruned = await docker(t, 'network', 'prune', '-f');
  t.true(pruned.includes('spare') && pruned.includes('sealed'), pruned);
  t.false(pruned.includes('front'));
  await docker(t, 'rm', '-f', 'db');
  await docker(t, 'network', 'rm', 'back');
  t.not((await d.docker(['network', 'inspect', 'back'])).code, 0);
});
