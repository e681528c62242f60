import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { TestDaemon, BERTH, useDaemon } from '../helpers/daemon';
import { contains, parseSubnet } from '../../src/network/ipv4';
import {
  canBind,
  chainRules,
  curl,
  facts,
  guardDrops,
  hex,
  hijackLoopback,
  ipToNum,
  linkExists,
  linksOn,
  must,
  neighbour,
  netOf,
  portOn,
  runOk,
  wgetIn,
} from './netutil';
import { runCommand } from '../helpers/proc';

/**
 * The bridge network end to end: real daemons, real namespaces, real iptables. Traffic
 * goes only to loopback, the host's own addresses, and the containers and namespaces the
 * tests make.
 */

const HTTPD = ['busybox', 'httpd', '-f', '-p', '80', '-h', '/etc'];

function grew(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...after].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k, v]) => `${k} +${v - (before.get(k) ?? 0)}`);
}

/** Some guard chain's drop count grew, or a guard chain that may have dropped them is gone. */
function guardDropped(before: Map<string, number>, after: Map<string, number>): boolean {
  return grew(before, after).length > 0 || [...before.keys()].some((k) => !after.has(k));
}

async function rxPackets(dev: string): Promise<number> {
  return Number(fs.readFileSync(`/sys/class/net/${dev}/statistics/rx_packets`, 'utf8'));
}

// One daemon serves every test here that neither kills, restarts nor needs a daemon of its
// own; each test names its containers with `share.name()` (removed and leak-checked at its
// end) and asserts only about its own containers and their rules: the tests run side by side.
let shared: TestDaemon;

test.before(async () => {
  shared = await TestDaemon.start();
});

test.after.always(async () => {
  await shared?.stop();
});

test('neighbour host: reaches 0.0.0.0 ports, not 127.0.0.1 ones, and the CVE-2020-8558 route to 127.0.0.1 is dropped', async (t) => {
  const share = useDaemon(t, shared);
  const d = share.d;
  const { suffix, bridge } = netOf(d);
  await runOk(t, d, ['run', '-d', '--name', share.name('web'), '-p', '127.0.0.1::80', '-p', '80', ...HTTPD]);
  const web = await facts(d, share.name('web'));
  const hp1 = portOn(web.ports, '127.0.0.1');
  const hp2 = portOn(web.ports, '0.0.0.0');
  t.log(`web ${web.ip}, 127.0.0.1:${hp1} and 0.0.0.0:${hp2}`);
  t.deepEqual(
    (await chainRules('nat', `BERTH-DNAT${suffix}`)).filter((r) => r.endsWith(` --to-destination ${web.ip}:80`)).sort(),
    [
      `-A BERTH-DNAT${suffix} -d 127.0.0.1/32 -p tcp -m tcp --dport ${hp1} -j DNAT --to-destination ${web.ip}:80`,
      `-A BERTH-DNAT${suffix} -p tcp -m tcp --dport ${hp2} -j DNAT --to-destination ${web.ip}:80`,
    ].sort(),
  );

  // From the host itself, both through loopback.
  for (const hp of [hp1, hp2]) {
    const r = await curl(`http://127.0.0.1:${hp}/hostname`);
    t.is(r.code, 0, `host -> 127.0.0.1:${hp}: ${r.stderr}`);
    t.is(r.stdout.trim(), web.hostname);
  }

  const nb = await neighbour(t);
  const get = (url: string) => nb.exec(['curl', '-sS', '--noproxy', '*', '-m', '3', url], 10_000);
  // The all-addresses port answers a neighbour at the host's address on the link...
  const ok = await get(`http://${nb.hostIp}:${hp2}/hostname`);
  t.is(ok.code, 0, `neighbour -> ${nb.hostIp}:${hp2}: ${ok.stderr}`);
  t.is(ok.stdout.trim(), web.hostname);
  // ...the localhost-only one does not (no DNAT rule matches, berthd's socket is on 127.0.0.1).
  const no = await get(`http://${nb.hostIp}:${hp1}/hostname`);
  t.not(no.code, 0, `neighbour reached ${nb.hostIp}:${hp1}: ${no.stdout}`);
  t.not(no.stdout.trim(), web.hostname);

  // CVE-2020-8558: the neighbour routes 127.0.0.1 to the host and sends to it.
  for (const c of hijackLoopback(nb.hostIp, nb.peerIf)) await nb.exec(c);
  const route = await nb.exec(['ip', 'route', 'get', '127.0.0.1']);
  t.regex(route.stdout, new RegExp(`127\\.0\\.0\\.1 via ${nb.hostIp.replace(/\./g, '\\.')} dev ${nb.peerIf}`), `attack route: ${route.stdout}${route.stderr}`);
  const drops0 = await guardDrops();
  const rx0 = await rxPackets(nb.hostIf);
  for (const hp of [hp1, hp2]) {
    const r = await get(`http://127.0.0.1:${hp}/hostname`);
    t.not(r.code, 0, `neighbour reached the host's 127.0.0.1:${hp}: ${r.stdout}`);
    t.false(r.stdout.includes(web.hostname));
  }
  const drops1 = await guardDrops();
  const rx1 = await rxPackets(nb.hostIf);
  t.log(`attack: ${rx1 - rx0} packets arrived on ${nb.hostIf}; guard drops: ${grew(drops0, drops1).join(', ') || 'none'} (own chain BERTH-GUARD${suffix})`);
  t.true(rx1 > rx0, 'the attack packets reached the host');
  // Per chain: the first guard chain in raw PREROUTING drops them, and that may be another
  // test daemon's, which can vanish before the second reading (its test ended): then its
  // count cannot be read, and only our own chain's is certain to be there.
  t.true(guardDropped(drops0, drops1), 'a BERTH-GUARD chain dropped the packets to 127.0.0.1');

  // The same from a container on the bridge, where route_localnet=1 and only the guard stands.
  await runOk(t, d, ['run', '-d', '--name', share.name('evil'), 'busybox', 'sleep', '600']);
  const evil = await facts(d, share.name('evil'));
  const inEvil = (args: string[]) => runCommand('nsenter', [`--net=/proc/${evil.pid}/ns/net`, ...args], { timeout: 10_000 });
  for (const c of hijackLoopback(netOf(d).gateway, 'eth0')) await inEvil(c);
  t.regex((await inEvil(['ip', 'route', 'get', '127.0.0.1'])).stdout, /via/);
  t.is(fs.readFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8').trim(), '1');
  const drops2 = await guardDrops();
  for (const hp of [hp1, hp2]) {
    const r = await inEvil(['curl', '-sS', '--noproxy', '*', '-m', '3', `http://127.0.0.1:${hp}/hostname`]);
    t.not(r.code, 0, `a container reached the host's 127.0.0.1:${hp}: ${r.stdout}`);
  }
  const drops3 = await guardDrops();
  t.log(`container attack: guard drops: ${grew(drops2, drops3).join(', ') || 'none'}`);
  t.true(guardDropped(drops2, drops3), 'a BERTH-GUARD chain dropped the container\'s packets to 127.0.0.1');

  // And the host still reaches both.
  for (const hp of [hp1, hp2]) t.is((await curl(`http://127.0.0.1:${hp}/hostname`)).stdout.trim(), web.hostname);
});

test('containers reach each other on the bridge, the gateway, and published ports through the host (hairpin)', async (t) => {
  const share = useDaemon(t, shared);
  const d = share.d;
  const { gateway } = netOf(d);
  const [an, bn] = [share.name('a'), share.name('b')];
  await runOk(t, d, ['run', '-d', '--name', an, ...HTTPD]);
  await runOk(t, d, ['run', '-d', '--name', bn, '-p', '80', ...HTTPD]);
  const a = await facts(d, an);
  const b = await facts(d, bn);
  const hp = portOn(b.ports, '0.0.0.0');
  t.not(a.ip, b.ip);
  t.true(contains(parseSubnet(netOf(d).subnet), ipToNum(a.ip)));

  const direct = await wgetIn(d, an, `http://${b.ip}:80/hostname`);
  t.is(direct.code, 0, direct.stderr);
  t.is(direct.stdout.trim(), b.hostname);
  const back = await wgetIn(d, bn, `http://${a.ip}:80/hostname`);
  t.is(back.stdout.trim(), a.hostname, back.stderr);

  // Hairpin: a -> gateway:hp is DNATed back onto the bridge to b.
  const hair = await wgetIn(d, an, `http://${gateway}:${hp}/hostname`);
  t.is(hair.code, 0, `a -> ${gateway}:${hp}: ${hair.stderr}`);
  t.is(hair.stdout.trim(), b.hostname);

  // The host at the gateway address: ping, and a server the test runs there.
  const ping = await d.berth(['exec', an, 'ping', '-c', '1', '-W', '3', gateway]);
  t.is(ping.code, 0, ping.stdout + ping.stderr);
  const server = http.createServer((req, res) => res.end(`host saw ${req.socket.remoteAddress}\n`));
  await new Promise<void>((r) => server.listen(0, gateway, r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const host = await wgetIn(d, an, `http://${gateway}:${port}/`);
  t.is(host.code, 0, host.stderr);
  t.is(host.stdout.trim(), `host saw ${a.ip}`);
});

// With br_netfilter on (bridge-nf-call-iptables=1), the DNATed packet goes back out of the
// bridge port it came in on, which the bridge allows only in hairpin mode (berth sets it).
test('a container reaches its own published port through the gateway (hairpin to itself)', async (t) => {
  const share = useDaemon(t, shared);
  const d = share.d;
  const { gateway } = netOf(d);
  const bn = share.name('b');
  await runOk(t, d, ['run', '-d', '--name', bn, '-p', '80', ...HTTPD]);
  const b = await facts(d, bn);
  const hp = portOn(b.ports, '0.0.0.0');
  t.log(`br_netfilter bridge-nf-call-iptables=${fs.existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables') ? fs.readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim() : 'absent'}`);
  const self = await wgetIn(d, bn, `http://${gateway}:${hp}/hostname`);
  t.is(self.code, 0, `b -> ${gateway}:${hp}: ${self.stderr}`);
  t.is(self.stdout.trim(), b.hostname);
});

test('/etc/hosts and resolv.conf; --network none has only lo and refuses -p; --network host sees the host', async (t) => {
  const share = useDaemon(t, shared);
  const d = share.d;
  const { bridge, gateway } = netOf(d);
  const named = share.name('named');
  await runOk(t, d, ['run', '-d', '--name', named, 'busybox', 'sleep', '600']);
  const c = await facts(d, named);
  const hosts = await runOk(t, d, ['exec', named, 'cat', '/etc/hosts']);
  t.regex(hosts, /^127\.0\.0\.1\s+localhost$/m);
  t.true(hosts.split('\n').some((l) => l.split(/\s+/).join(' ') === `${c.ip} ${c.hostname} ${named}`), hosts);
  t.is(await runOk(t, d, ['exec', named, 'hostname']), c.hostname);

  // resolv.conf: the host's nameservers, loopback ones left out (else the gateway forwards).
  const nameservers = (text: string) => [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]);
  let want: string[] = [];
  for (const f of ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
    const all = fs.existsSync(f) ? nameservers(fs.readFileSync(f, 'utf8')) : [];
    want = all.filter((n) => !n.startsWith('127.') && n !== '::1');
    if (want.length) break;
  }
  if (want.length === 0) want = [gateway];
  const resolv = await runOk(t, d, ['exec', named, 'cat', '/etc/resolv.conf']);
  t.deepEqual(nameservers(resolv), want, resolv);

  // none: loopback only, and nothing to publish on.
  const none = await d.berth(['run', '--rm', '--name', share.name('none'), '--network', 'none', 'busybox', 'ip', '-o', 'link']);
  t.is(none.code, 0, none.stderr);
  t.deepEqual(
    none.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1].trim().split('@')[0]),
    ['lo'],
  );
  const noneAddr = await d.berth(['run', '--rm', '--name', share.name('noneaddr'), '--network', 'none', 'busybox', 'ip', 'addr']);
  t.notRegex(noneAddr.stdout, /eth0/);
  const refusedName = share.name('refused');
  const refused = await d.berth(['run', '--rm', '--name', refusedName, '--network', 'none', '-p', '80', 'busybox', 'true']);
  t.is(refused.code, 125);
  t.regex(refused.stderr, /--network none/);
  t.is((await d.berth(['ps', '-aq', '--filter', `name=${refusedName}`])).stdout.trim(), '', 'the refused run made no container');

  // host: the host's links (its uplink and this daemon's bridge) and hostname.
  const hostLinks = (JSON.parse((await runCommand('ip', ['-j', 'link', 'show'])).stdout) as Array<{ ifname: string; link_type?: string }>).map((l) => l.ifname);
  const hl = await d.berth(['run', '--rm', '--name', share.name('hostlinks'), '--network', 'host', 'busybox', 'ip', '-o', 'link']);
  t.is(hl.code, 0, hl.stderr);
  const seen = hl.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1].trim().split('@')[0]);
  t.true(seen.includes(bridge), `host-network container sees ${seen.join(' ')}`);
  const uplink = hostLinks.find((n) => n !== 'lo' && !n.startsWith('berth') && !n.startsWith('bv') && fs.existsSync(`/sys/class/net/${n}/device`)) ?? 'eth0';
  t.true(seen.includes(uplink), `host-network container sees ${seen.join(' ')}, not ${uplink}`);
  t.is((await d.berth(['run', '--rm', '--name', share.name('hostname'), '--network', 'host', 'busybox', 'hostname'])).stdout.trim(), os.hostname());

  // host with -p: created and run (the ports are discarded); berthd says so in Warnings.
  const hp = await d.berth(['run', '--rm', '--name', share.name('hostp'), '--network', 'host', '-p', '80', 'busybox', 'true']);
  t.is(hp.code, 0, hp.stderr);
  const created = await d.containers.create({ Image: 'busybox', Cmd: ['true'], ExposedPorts: { '80/tcp': {} }, HostConfig: { NetworkMode: 'host', PortBindings: { '80/tcp': [{ HostPort: '' }] } } } as never, share.name('hostapi'));
  t.deepEqual(created.Warnings, ['Published ports are discarded when using host network mode']);
});

// The CLI prints the create Warnings as docker does.
test('`berth run --network host -p` prints the warning that the ports are discarded', async (t) => {
  const share = useDaemon(t, shared);
  const d = share.d;
  const r = await d.berth(['create', '--name', share.name('warn'), '--network', 'host', '-p', '8080:80', 'busybox', 'true']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /WARNING: Published ports are discarded when using host network mode/);
});

// Its own daemon: the test SIGKILLs, restarts and SIGTERMs berthd, and asserts the whole
// chain and every link on the bridge.
test('stop/start keep the address and move the rule and veth; SIGKILL keeps the port; restart reconciles its own veths only; SIGTERM removes everything', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const { bridge, suffix } = netOf(d);
  const dnat = `BERTH-DNAT${suffix}`;
  await runOk(t, d, ['run', '-d', '--name', 'web', '-p', '80', ...HTTPD]);
  const w = await facts(d, 'web');
  const hp = portOn(w.ports, '0.0.0.0');
  const veth = `bv${w.id.slice(0, 12)}`;
  const rule = `-A ${dnat} -p tcp -m tcp --dport ${hp} -j DNAT --to-destination ${w.ip}:80`;
  t.deepEqual(await linksOn(bridge), [veth]);
  t.deepEqual(await chainRules('nat', dnat), [rule]);
  t.is((await curl(`http://127.0.0.1:${hp}/hostname`)).stdout.trim(), w.hostname);
  const idleId = await runOk(t, d, ['create', '--name', 'idle', 'busybox']);

  // stop: veth and rule gone, the port free; start: same address, rule and veth back.
  await runOk(t, d, ['stop', '-t', '1', 'web']);
  t.false(await linkExists(veth));
  t.deepEqual(await linksOn(bridge), []);
  t.deepEqual(await chainRules('nat', dnat), []);
  t.is(await canBind(hp, '0.0.0.0'), true, 'a stopped container holds no host port');
  t.is((await facts(d, 'web')).ip, w.ip, 'the stopped container keeps its address');
  await runOk(t, d, ['start', 'web']);
  const w2 = await facts(d, 'web');
  t.is(w2.ip, w.ip);
  const hp2 = portOn(w2.ports, '0.0.0.0');
  const rule2 = `-A ${dnat} -p tcp -m tcp --dport ${hp2} -j DNAT --to-destination ${w.ip}:80`;
  t.deepEqual(await chainRules('nat', dnat), [rule2]);
  t.deepEqual(await linksOn(bridge), [veth]);
  t.is((await curl(`http://127.0.0.1:${hp2}/hostname`)).stdout.trim(), w.hostname);

  // SIGKILL: the container and its forwarding live on.
  await d.kill();
  const down = await curl(`http://127.0.0.1:${hp2}/hostname`);
  t.is(down.code, 0, `while berthd is down: ${down.stderr}`);
  t.is(down.stdout.trim(), w.hostname);
  // Damage while it is down: the DNAT rules flushed, a stale veth of one of its own
  // (not running) containers on the bridge, and a veth on it that is not the daemon's.
  await must(t, 'iptables', ['-w', '5', '-t', 'nat', '-F', dnat]);
  t.not((await curl(`http://127.0.0.1:${hp2}/hostname`, [], 2)).code, 0, 'without the rule the port does not answer');
  const stale = `bv${idleId.slice(0, 12)}`;
  const foreign = `bx${hex(6)}`;
  t.teardown(() => runCommand('ip', ['link', 'del', 'dev', stale]).then(() => undefined));
  t.teardown(() => runCommand('ip', ['link', 'del', 'dev', foreign]).then(() => undefined));
  for (const [end, peer] of [[stale, `bt${hex(6)}`], [foreign, `bt${hex(6)}`]]) {
    await must(t, 'ip', ['link', 'add', end, 'type', 'veth', 'peer', 'name', peer]);
    await must(t, 'ip', ['link', 'set', end, 'master', bridge]);
    await must(t, 'ip', ['link', 'set', end, 'up']);
  }
  t.deepEqual((await linksOn(bridge)).sort(), [veth, stale, foreign].sort());

  await d.restart();
  t.deepEqual(await chainRules('nat', dnat), [rule2], 'the rule is back');
  t.deepEqual((await linksOn(bridge)).sort(), [veth, foreign].sort(), "its stopped container's stale veth is gone, the running one's stays, and a veth not of its containers is left alone");
  t.false(await linkExists(stale));
  await must(t, 'ip', ['link', 'del', 'dev', foreign]);
  const up = await curl(`http://127.0.0.1:${hp2}/hostname`);
  t.is(up.stdout.trim(), w.hostname, up.stderr);
  t.is(await canBind(hp2, '0.0.0.0'), 'EADDRINUSE', 'berthd holds the published port again');
  t.is(await canBind(hp2, '127.0.0.1'), 'EADDRINUSE');
  const ins = await d.berth(['exec', 'web', 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
  t.regex(ins.stdout, new RegExp(`inet ${w.ip.replace(/\./g, '\\.')}/`));

  // Shutdown with nothing running: every chain, jump and the bridge go.
  await runOk(t, d, ['rm', '-f', 'web', 'idle']);
  t.deepEqual(await chainRules('nat', dnat), []);
  t.is(await d.terminate(), 0, d.log());
  const left = (await runCommand('iptables-save', [])).stdout.split('\n').filter((l) => l.includes(suffix));
  t.deepEqual(left, [], 'no rule or chain of the daemon is left');
  t.false(await linkExists(bridge), 'the bridge is gone');
  t.false(await linkExists(veth));
  t.is(await canBind(hp2, '0.0.0.0'), true);
});

test('run --dry-run prints the DNAT rule and creates nothing; daemon --dry-run prints the guard and changes nothing', async (t) => {
  const share = useDaemon(t, shared);
  const d = share.d;
  const { suffix, subnet } = netOf(d);
  const dry = share.name('dry');
  const r = await d.berth(['run', '--dry-run', '--name', dry, '-p', '8080:80', 'busybox']);
  t.is(r.code, 0, r.stderr);
  const m = new RegExp(`^-t nat -A BERTH-DNAT${suffix} -p tcp -m tcp --dport 8080 -j DNAT --to-destination (\\d+\\.\\d+\\.\\d+\\.\\d+):80$`, 'm').exec(r.stdout);
  t.truthy(m, r.stdout);
  t.true(contains(parseSubnet(subnet), ipToNum(m![1])), `${m![1]} in ${subnet}`);
  // Other tests' containers share this daemon: no container of this name, and no rule for
  // host port 8080 (no other test here publishes it). A veth is made only for a container.
  t.is((await d.berth(['ps', '-aq', '--filter', `name=${dry}`])).stdout.trim(), '', 'no container');
  t.deepEqual((await chainRules('nat', `BERTH-DNAT${suffix}`)).filter((l) => / --dport 8080 /.test(l)), [], 'no rule');
  t.is(await canBind(8080, '127.0.0.1').then((x) => x !== 'EADDRINUSE' || 'held'), true, 'berthd holds no port 8080 for it');

  // The daemon's plan, for a bridge that does not exist: printed, nothing made.
  const tag = hex(3);
  const br = `btest${tag}`.slice(0, 15);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-t-dry-'));
  t.teardown(() => fs.promises.rm(root, { recursive: true, force: true }));
  const mine = (text: string) => text.split('\n').filter((l) => l.includes(br) || l.includes(br.toUpperCase()) || l.includes('10.251.0.0/24'));
  t.deepEqual(mine((await runCommand('iptables-save', [])).stdout), []);
  const p = await runCommand(BERTH, ['daemon', '--dry-run', '--root', root, '--bridge', br, '--subnet', '10.251.0.0/24']);
  t.is(p.code, 0, p.stderr);
  const S = `-${br.toUpperCase()}`;
  const lines = p.stdout.split('\n');
  t.true(lines.includes(`-t raw -N BERTH-GUARD${S}`), p.stdout);
  t.true(lines.includes(`-t raw -I PREROUTING -j BERTH-GUARD${S}`), p.stdout);
  t.true(lines.includes(`-t raw -A BERTH-GUARD${S} -d 127.0.0.0/8 ! -i lo -j DROP`), p.stdout);
  t.true(lines.includes(`-t nat -A BERTH-POST${S} -s 10.251.0.0/24 ! -o ${br} -j MASQUERADE`), p.stdout);
  t.deepEqual(mine((await runCommand('iptables-save', [])).stdout), [], 'iptables unchanged');
  t.false(await linkExists(br), 'no bridge');
  t.deepEqual(fs.readdirSync(root), [], 'nothing written to the root');
});

// The dry run peeks at the next address without moving the allocator on.
// Its own daemon: it asserts which address the daemon hands out next, which any other
// test's container would take.
test('the address `run --dry-run` prints is the one the next container gets', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const r = await d.berth(['run', '--dry-run', '-p', '8080:80', 'busybox']);
  const planned = /--to-destination (\S+):80/.exec(r.stdout)?.[1];
  t.truthy(planned, r.stdout + r.stderr);
  await runOk(t, d, ['run', '-d', '--name', 'real', 'busybox', 'sleep', '600']);
  t.is((await facts(d, 'real')).ip, planned!);
});
