import test from 'ava';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as packet from 'dns-packet';
import { TestDaemon, exec } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { linkExists } from './netutil';
import { userVethName } from '../../src/network/network';
import { ownerTag } from '../../src/network/claims';
import { contains, ipToNum, parseSubnet } from '../../src/network/ipv4';

/**
 * User-defined networks with the real docker CLI against one daemon: the network verbs,
 * run --network/--network-alias/--ip, DNS by name and alias through 127.0.0.11, isolation
 * between networks, internal networks, hot-plug connect/disconnect, legacy links on the
 * default bridge, endpoint links, DNS over TCP and forwarding to a container's own --dns,
 * rename, network events, run --dry-run on a network, rm beside a stopped container, and
 * at daemon start the repair of a running container's deleted veth and the removal of
 * bridges a crash left.
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

test.serial('a running container whose veth was deleted by hand answers again after berthd restarts, at the same address and by name', async (t) => {
  const i = JSON.parse(await docker(t, 'inspect', 'web'))[0];
  const ep = i.NetworkSettings.Networks.front;
  const veth = userVethName(i.Id, ep.NetworkID);
  t.true(await linkExists(veth));
  // The bridge keeps its own MAC while ports come and go: containers hold it in their ARP
  // caches, and a bridge that took its lowest port's MAC left them asking a gone address.
  const bridge = (JSON.parse(await docker(t, 'network', 'inspect', 'front'))[0].Options as Record<string, string>)['com.docker.network.bridge.name'];
  const mac = fs.readFileSync(`/sys/class/net/${bridge}/address`, 'utf8').trim();
  await d.terminate(); // containers live on
  await d.docker(['version']).catch(() => undefined);
  const { execFile } = await import('node:child_process');
  await new Promise((res) => execFile('ip', ['link', 'del', 'dev', veth], res));
  t.false(await linkExists(veth));
  await d.restart();
  t.true(await linkExists(veth), 'the veth is back');
  t.is(fs.readFileSync(`/sys/class/net/${bridge}/address`, 'utf8').trim(), mac, "the bridge's MAC did not follow its ports");
  t.is(await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web'), ep.IPAddress);
  const got = await d.docker(['exec', 'other', 'wget', '-q', '-O', '-', `http://${ep.IPAddress}/hostname`]);
  t.is(got.stdout.trim(), i.Id.slice(0, 12), `${got.stderr}\n${d.log().split('\n').filter((l) => /network|dns/i.test(l)).slice(-8).join('\n')}`);
  // DNS by name both ways after the repair: the repaired container is answered for, and it asks.
  // Polled: on a loaded machine one busybox lookup may time out while the restarted daemon catches up.
  const dnsLog = () => d.log().split('\n').filter((l) => /network|dns/i.test(l)).slice(-12).join('\n');
  await eventually(async () => addresses((await d.docker(['exec', 'other', 'nslookup', 'www'])).stdout).join() === ep.IPAddress, { message: `other to resolve www to ${ep.IPAddress}\n${dnsLog()}` });
  const otherIp = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'other');
  await eventually(async () => addresses((await d.docker(['exec', 'web', 'nslookup', 'other'])).stdout).join() === otherIp, { message: `web to resolve other to ${otherIp}\n${dnsLog()}` });
  t.is(await docker(t, 'exec', 'other', 'wget', '-q', '-O', '-', 'http://web/hostname'), i.Id.slice(0, 12));
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

/** A DNS query for `name` (A) from inside a container's network namespace, over TCP or UDP, answered through 127.0.0.11. */
async function askInside(pid: number, name: string, tcp: boolean): Promise<{ rcode: string; ips: string[] }> {
  const script = `
    const packet = require(${JSON.stringify(require.resolve('dns-packet'))});
    const q = packet.encode({ type: 'query', id: 7, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: ${JSON.stringify(name)} }] });
    const done = (buf) => { const a = packet.decode(buf); console.log(JSON.stringify({ rcode: a.rcode, ips: a.answers.filter((x) => x.type === 'A').map((x) => x.data) })); process.exit(0); };
    setTimeout(() => { console.error('no answer'); process.exit(2); }, 8000);
    if (${tcp}) {
      const s = require('node:net').connect({ host: '127.0.0.11', port: 53 }, () => { const h = Buffer.alloc(2); h.writeUInt16BE(q.length); s.write(Buffer.concat([h, q])); });
      let b = Buffer.alloc(0);
      s.on('data', (c) => { b = Buffer.concat([b, c]); if (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) done(b.subarray(2, 2 + b.readUInt16BE(0))); });
    } else {
      const s = require('node:dgram').createSocket('udp4');
      s.on('message', done);
      s.send(q, 53, '127.0.0.11');
    }`;
  const { stdout } = await exec('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e', script]);
  return JSON.parse(stdout);
}

/** A resolver the test runs on a loopback address of the host (no internet): `ext.example` is 192.0.2.55, over UDP and TCP. */
async function fakeUpstream(t: { teardown: (fn: () => void) => void }): Promise<{ ip: string; asked: string[] }> {
  const ip = `127.53.${randomBytes(1)[0]}.${1 + (randomBytes(1)[0] % 250)}`;
  const asked: string[] = [];
  const answer = (msg: Buffer, via: string) => {
    const q = packet.decode(msg);
    const name = q.questions![0].name;
    asked.push(`${via} ${name}`);
    const answers = name === 'ext.example' && q.questions![0].type === 'A' ? [{ type: 'A' as const, name, ttl: 60, class: 'IN' as const, data: '192.0.2.55' }] : [];
    return packet.encode({ id: q.id, type: 'response', flags: name === 'ext.example' ? 0 : 3, questions: q.questions, answers });
  };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m, r) => udp.send(answer(m, 'udp'), r.port, r.address));
  await new Promise<void>((res) => udp.bind(53, ip, () => res()));
  const tcp = net.createServer((sock) => {
    let b = Buffer.alloc(0);
    sock.on('data', (c) => {
      b = Buffer.concat([b, c]);
      if (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) {
        const out = answer(b.subarray(2, 2 + b.readUInt16BE(0)), 'tcp');
        const h = Buffer.alloc(2);
        h.writeUInt16BE(out.length);
        sock.end(Buffer.concat([h, out]));
      }
    });
  });
  await new Promise<void>((res) => tcp.listen(53, ip, () => res()));
  t.teardown(() => {
    udp.close();
    tcp.close();
  });
  return { ip, asked };
}

test.serial('DNS over TCP through 127.0.0.11; names not ours go to the container\'s own --dns resolver (UDP and TCP) while container names keep resolving', async (t) => {
  const up = await fakeUpstream(t);
  const webIp = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web');
  await docker(t, 'run', '-d', '--name', 'asker', '--network', 'front', '--dns', up.ip, '--dns-search', 'corp.example', 'busybox', 'sleep', '600');
  const resolv = await docker(t, 'exec', 'asker', 'cat', '/etc/resolv.conf');
  t.is(resolv.split('\n')[0], 'nameserver 127.0.0.11', 'the container keeps asking the embedded DNS');
  t.regex(resolv, /^search corp\.example$/m);
  const pid = Number(await docker(t, 'inspect', '-f', '{{.State.Pid}}', 'asker'));
  t.deepEqual(await askInside(pid, 'web', true), { rcode: 'NOERROR', ips: [webIp] }, 'a container name over TCP');
  t.deepEqual(await askInside(pid, 'nosuchname', true), { rcode: 'NXDOMAIN', ips: [] }, 'an unknown name over TCP');
  t.deepEqual(await askInside(pid, 'ext.example', false), { rcode: 'NOERROR', ips: ['192.0.2.55'] }, 'forwarded over UDP');
  t.deepEqual(await askInside(pid, 'ext.example', true), { rcode: 'NOERROR', ips: ['192.0.2.55'] }, 'forwarded over TCP');
  t.deepEqual(up.asked, ['udp ext.example', 'tcp ext.example'], 'container names never went upstream');
  const viaBusybox = await d.docker(['exec', 'asker', 'nslookup', 'ext.example']);
  t.deepEqual(addresses(viaBusybox.stdout), ['192.0.2.55'], viaBusybox.stdout + viaBusybox.stderr);
  await docker(t, 'rm', '-f', 'asker');
});

/** The DNS redirect rules in the nat table of a container's namespace (127.0.0.11 → its first user-defined network's gateway). */
async function dnsRedirects(pid: number): Promise<string[]> {
  const { stdout } = await exec('nsenter', [`--net=/proc/${pid}/ns/net`, 'iptables-save', '-t', 'nat']);
  return stdout.split('\n').filter((l) => l.includes('127.0.0.11'));
}

test.serial('a default-bridge container connected to a user-defined network asks 127.0.0.11 from then on, running or stopped, and its own --dns again when it leaves the last one', async (t) => {
  const up = await fakeUpstream(t);
  const webIp = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web');
  const firstLine = async (c: string) => (await docker(t, 'exec', c, 'cat', '/etc/resolv.conf')).split('\n')[0];

  // Running: connect switches it to the embedded DNS at once; names not ours go to its --dns.
  await docker(t, 'run', '-d', '--name', 'plain', '--dns', up.ip, 'busybox', 'sleep', '600');
  t.is(await firstLine('plain'), `nameserver ${up.ip}`, 'on the default bridge alone it has its own --dns');
  const pid = Number(await docker(t, 'inspect', '-f', '{{.State.Pid}}', 'plain'));
  t.deepEqual(await dnsRedirects(pid), [], 'no redirect on the default bridge alone');
  await docker(t, 'network', 'connect', 'front', 'plain');
  t.is(await firstLine('plain'), 'nameserver 127.0.0.11');
  const byName = await d.docker(['exec', 'plain', 'nslookup', 'web']);
  t.deepEqual(addresses(byName.stdout), [webIp], byName.stdout + byName.stderr);
  const ext = await d.docker(['exec', 'plain', 'nslookup', 'ext.example']);
  t.deepEqual(addresses(ext.stdout), ['192.0.2.55'], ext.stdout + ext.stderr);
  t.true(up.asked.includes('udp ext.example'), 'other names went to its --dns server');
  t.false(up.asked.some((q) => q.endsWith(' web')), 'container names never went upstream');

  // Disconnected from its last user-defined network: its own resolvers again, and no redirect left.
  await docker(t, 'network', 'disconnect', 'front', 'plain');
  t.is(await firstLine('plain'), `nameserver ${up.ip}`);
  t.deepEqual(await dnsRedirects(pid), []);

  // Stopped: connected before its start, it starts asking 127.0.0.11 and resolves names.
  await docker(t, 'create', '--name', 'later', 'busybox', 'sleep', '600');
  await docker(t, 'network', 'connect', 'front', 'later');
  await docker(t, 'start', 'later');
  t.is(await firstLine('later'), 'nameserver 127.0.0.11');
  const later = await d.docker(['exec', 'later', 'nslookup', 'web']);
  t.deepEqual(addresses(later.stdout), [webIp], later.stdout + later.stderr);
  // And the other way: stopped, disconnected from its last one, it starts with the host's resolvers.
  await docker(t, 'stop', '-t', '0', 'later');
  await docker(t, 'network', 'disconnect', 'front', 'later');
  await docker(t, 'start', 'later');
  t.not(await firstLine('later'), 'nameserver 127.0.0.11');
  await docker(t, 'rm', '-f', 'plain', 'later');
});

test.serial('rename: the new name resolves at once and the old one no longer does', async (t) => {
  await docker(t, 'run', '-d', '--name', 'before', '--network', 'front', 'busybox', 'sleep', '600');
  const ip = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'before');
  t.deepEqual(addresses((await d.docker(['exec', 'other', 'nslookup', 'before'])).stdout), [ip]);
  await docker(t, 'rename', 'before', 'after');
  t.deepEqual(addresses((await d.docker(['exec', 'other', 'nslookup', 'after'])).stdout), [ip]);
  const old = await d.docker(['exec', 'other', 'nslookup', 'before']);
  t.regex(old.stdout + old.stderr, /NXDOMAIN/);
  await docker(t, 'rm', '-f', 'after');
});

test.serial('endpoint links on a user-defined network: the link alias resolves for the linking container alone', async (t) => {
  await docker(t, 'network', 'create', 'linked');
  await docker(t, 'run', '-d', '--name', 'target', '--network', 'linked', ...HTTPD);
  const ip = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.linked.IPAddress}}', 'target');
  await docker(t, 'network', 'create', 'linker-net');
  await docker(t, 'run', '-d', '--name', 'linker', '--network', 'linker-net', 'busybox', 'sleep', '600');
  await docker(t, 'network', 'connect', '--link', 'target:site', 'linked', 'linker');
  t.deepEqual(JSON.parse(await docker(t, 'inspect', '-f', '{{json .NetworkSettings.Networks.linked.Links}}', 'linker')), ['target:site']);
  const got = await d.docker(['exec', 'linker', 'nslookup', 'site']);
  t.deepEqual(addresses(got.stdout), [ip], got.stdout + got.stderr);
  await docker(t, 'run', '-d', '--name', 'bystander', '--network', 'linked', 'busybox', 'sleep', '600');
  const not = await d.docker(['exec', 'bystander', 'nslookup', 'site']);
  t.deepEqual(addresses(not.stdout), [], 'another container on the network does not see the link alias');
  // docker run --network NAME --link: the CLI sends the link in the endpoint's config.
  const run = await d.docker(['run', '--rm', '--network', 'linked', '--link', 'target:shop', 'busybox', 'nslookup', 'shop']);
  t.deepEqual(addresses(run.stdout), [ip], run.stdout + run.stderr);
  await docker(t, 'rm', '-f', 'linker', 'bystander');
  await docker(t, 'network', 'rm', 'linker-net');
});

test.serial('run --dry-run --network NAME plans the DNAT to the address that network gives next, and takes nothing', async (t) => {
  const subnet = await docker(t, 'network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'linked');
  const r = await d.berth(['run', '--dry-run', '--network', 'linked', '-p', '8080:80', 'busybox']);
  t.is(r.code, 0, r.stderr);
  const planned = /--to-destination (\S+):80/.exec(r.stdout)?.[1];
  t.truthy(planned, r.stdout);
  t.true(contains(parseSubnet(subnet), ipToNum(planned ?? '')), `${planned} in ${subnet}`);
  const fixed = await d.berth(['run', '--dry-run', '--network', 'front', '--ip', '10.197.10.77', '-p', '8081:80', 'busybox']);
  t.regex(fixed.stdout, /--to-destination 10\.197\.10\.77:80$/m, fixed.stdout + fixed.stderr);
  t.not((await d.berth(['run', '--dry-run', '--network', 'nosuchnet', 'busybox'])).code, 0);
  await docker(t, 'run', '-d', '--name', 'next', '--network', 'linked', 'busybox', 'sleep', '600');
  t.is(await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.linked.IPAddress}}', 'next'), planned ?? '');
  await docker(t, 'rm', '-f', 'next');
});

test.serial('network rm takes a network whose only container is stopped (it holds no endpoint, as in Docker); that container then fails to start with NOT_FOUND', async (t) => {
  await docker(t, 'network', 'create', 'brief');
  const id = await docker(t, 'run', '-d', '--name', 'sleeper', '--network', 'brief', 'busybox', 'sleep', '600');
  t.not((await d.docker(['network', 'rm', 'brief'])).code, 0, 'refused while its container runs');
  await docker(t, 'stop', '-t', '0', 'sleeper');
  await docker(t, 'network', 'rm', 'brief');
  const err = await t.throwsAsync(d.containers.start(id));
  t.is((err as { code?: string }).code, 'NOT_FOUND');
  await docker(t, 'network', 'disconnect', '--force', 'brief', 'sleeper');
  t.false(Object.keys(JSON.parse(await docker(t, 'inspect', '-f', '{{json .NetworkSettings.Networks}}', 'sleeper'))).includes('brief'), 'the record no longer names the network');
  await docker(t, 'rm', '-f', 'sleeper');
});

test.serial('a network removed and created again under its name is another network: a stopped container on the old one is refused at start (as Docker, by the recorded id) until it is disconnected and connected again', async (t) => {
  await docker(t, 'network', 'create', 'again');
  const id = await docker(t, 'run', '-d', '--name', 'returner', '--network', 'again', 'busybox', 'sleep', '600');
  const oldNet = await docker(t, 'network', 'inspect', '-f', '{{.Id}}', 'again');
  await docker(t, 'stop', '-t', '0', 'returner');
  await docker(t, 'network', 'rm', 'again');
  await docker(t, 'network', 'create', 'again');
  const newNet = await docker(t, 'network', 'inspect', '-f', '{{.Id}}', 'again');
  t.not(newNet, oldNet);
  const err = await t.throwsAsync(d.containers.start(id));
  t.is((err as { code?: string }).code, 'NOT_FOUND');
  const connect = await t.throwsAsync(d.transport.json('POST', '/networks/again/connect', { body: { Container: 'returner' } }));
  t.is((connect as { code?: string }).code, 'CONFLICT', 'still on the old network of that name');
  await docker(t, 'network', 'disconnect', '--force', 'again', 'returner');
  t.false(Object.keys(JSON.parse(await docker(t, 'inspect', '-f', '{{json .NetworkSettings.Networks}}', 'returner'))).includes('again'), 'the stale endpoint went');
  await docker(t, 'network', 'connect', 'again', 'returner');
  await docker(t, 'start', 'returner');
  t.is(await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.again.NetworkID}}', 'returner'), newNet);
  const ip = await docker(t, 'inspect', '-f', '{{.NetworkSettings.Networks.again.IPAddress}}', 'returner');
  const [n] = JSON.parse(await docker(t, 'network', 'inspect', 'again'));
  t.deepEqual(Object.values(n.Containers).map((c) => (c as { IPv4Address: string }).IPv4Address.split('/')[0]), [ip]);
  await docker(t, 'rm', '-f', 'returner');
  await docker(t, 'network', 'rm', 'again');
});

test.serial('network events: create, connect and disconnect (hot-plug, start and stop), destroy', async (t) => {
  const since = (Date.now() / 1000 - 1).toFixed(3);
  await docker(t, 'network', 'create', 'ev');
  const netId = await docker(t, 'network', 'inspect', '-f', '{{.Id}}', 'ev');
  const id = await docker(t, 'run', '-d', '--name', 'evc', '--network', 'ev', 'busybox', 'sleep', '600');
  await docker(t, 'network', 'connect', 'front', 'evc');
  await docker(t, 'network', 'disconnect', 'front', 'evc');
  await docker(t, 'stop', '-t', '0', 'evc');
  await docker(t, 'rm', 'evc');
  await docker(t, 'network', 'rm', 'ev');
  const want = [`create ev ${netId} `, `connect ev ${netId} ${id}`, `connect front  ${id}`, `disconnect front  ${id}`, `disconnect ev ${netId} ${id}`, `destroy ev ${netId} `];
  const events = async () => {
    const until = (Date.now() / 1000).toFixed(3);
    const out = await docker(t, 'events', '--since', since, '--until', until, '--filter', 'type=network', '--format', '{{.Action}} {{.Actor.Attributes.name}} {{.Actor.ID}} {{index .Actor.Attributes "container"}}');
    return out
      .split('\n')
      .filter((l) => l.includes(netId) || l.endsWith(id))
      .map((l) => (l.includes(' front ') ? l.replace(/ front [0-9a-f]{64} /, ' front  ') : l).trimEnd());
  };
  // The stop's disconnect comes with the exit's clean-up, which may follow `docker stop`'s answer.
  const got = await eventually(async () => ((await events()).length >= want.length ? events() : undefined), { message: 'all six network events' });
  t.deepEqual(got, want.map((l) => l.trimEnd()));
});

test.serial('at start, a bridge this root claims that no network names (left by a crash) is removed; one another root claims is not touched', async (t) => {
  await d.kill();
  const tag = randomBytes(3).toString('hex');
  const mine = `br-orph${tag}`;
  const theirs = `br-othr${tag}`;
  const otherRoot = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-t-other-'));
  t.teardown(async () => {
    await exec('ip', ['link', 'del', 'dev', theirs]).catch(() => undefined);
    await exec('ip', ['link', 'del', 'dev', mine]).catch(() => undefined);
    await fs.promises.rm(otherRoot, { recursive: true, force: true });
  });
  for (const [name, root] of [[mine, d.root], [theirs, otherRoot]]) {
    await exec('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
    await exec('ip', ['link', 'set', 'dev', name, 'alias', `berth-root=${ownerTag(root)}`]);
  }
  await d.restart();
  t.false(await linkExists(mine), 'our crash-left bridge is gone');
  t.true(await linkExists(theirs), "another root's bridge is left alone");
  t.true(await linkExists((JSON.parse(await docker(t, 'network', 'inspect', 'front'))[0].Options as Record<string, string>)['com.docker.network.bridge.name']), 'recorded networks keep their bridges');
});
