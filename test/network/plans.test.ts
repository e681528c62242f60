/**
 * The network's pure parts (Docker's port fields checked, addresses, rule plans) and the
 * one executor against the real iptables: whole chains, idempotent, removed without a trace.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ConflictError, FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import { Ipam } from '../../src/network/ipam';
import { ipToNum, numToIp, parseSubnet } from '../../src/network/ipv4';
import { IptablesExecutor } from '../../src/network/iptables';
import { portRequests, portsView, summaryPorts } from '../../src/network/mappings';
import { PortReservations } from '../../src/network/reservations';
import { baseRules, jumps, ownChains, portRules, type NetConfig } from '../../src/network/rules';
import { checkPorts } from '../../src/network/network';

test('PortBindings from the API become requests; bad ones are typed errors with hints', (t) => {
  t.deepEqual(portRequests({ '80/tcp': {} }, { '80/tcp': [{ HostIp: '', HostPort: '8080' }] }, false), [
    { proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPortLo: 8080, hostPortHi: 8080 },
  ]);
  t.deepEqual(portRequests({ '53/udp': {}, '80/tcp': {} }, { '53/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] }, true), [
    { proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostPortLo: 0, hostPortHi: 0 },
    { proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPortLo: 0, hostPortHi: 0 },
  ]);
  // HostPort "0" is a random port, as Docker reads it (testcontainers sends it).
  t.deepEqual(portRequests({}, { '6379/tcp': [{ HostPort: '0' }] }, false)[0], { proto: 'tcp', containerPort: 6379, hostIp: '0.0.0.0', hostPortLo: 0, hostPortHi: 0 });
  t.deepEqual(portRequests({}, { '80': [{ HostPort: '8000-8010' }] }, false)[0], { proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPortLo: 8000, hostPortHi: 8010 });
  const bad: Array<[Record<string, unknown>, Record<string, Array<{ HostIp?: string; HostPort?: string }>>]> = [
    [{}, { '0/tcp': [{}] }],
    [{}, { '65536/tcp': [{}] }],
    [{}, { 'abc/tcp': [{}] }],
    [{}, { '80/sctp': [{}] }],
    [{}, { '80/tcp': [{ HostPort: '70000' }] }],
    [{}, { '80/tcp': [{ HostPort: '90-80' }] }],
    [{}, { '80/tcp': [{ HostIp: 'nope' }] }],
    [{}, { '80/tcp': [{ HostIp: '192.0.2.254' === localAddress() ? '198.51.100.7' : '192.0.2.254' }] }],
    [{ 'x/tcp': {} }, {}],
  ];
  for (const [exposed, bindings] of bad) {
    const e = t.throws(() => portRequests(exposed, bindings, true), { instanceOf: InvalidArgumentError }, JSON.stringify(bindings));
    t.truthy(e?.hint);
  }
  t.throws(() => checkPorts('none', {}, { '80/tcp': [{}] }, false), { instanceOf: InvalidArgumentError });
  t.deepEqual(checkPorts('host', {}, { '80/tcp': [{}] }, false).requests, []);
  t.is(checkPorts('host', {}, { '80/tcp': [{}] }, false).warnings.length, 1);
});

function localAddress(): string {
  return execFileSync('hostname', ['-I'], { encoding: 'utf8' }).trim().split(/\s+/)[0] ?? '';
}

test('inspect and ps views have Docker shapes', (t) => {
  const published = [{ proto: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 32768, containerPort: 6379 }];
  t.deepEqual(portsView({ '6379/tcp': {}, '80/tcp': {} }, published), { '6379/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }], '80/tcp': null });
  t.deepEqual(summaryPorts({ '6379/tcp': {}, '80/tcp': {} }, published), [
    { IP: '0.0.0.0', PrivatePort: 6379, PublicPort: 32768, Type: 'tcp' },
    { PrivatePort: 80, Type: 'tcp' },
  ]);
});

test('IPAM: never the network, gateway or broadcast address; round robin; a full subnet is a typed error', (t) => {
  const ipam = new Ipam(parseSubnet('10.9.8.0/29')); // .0 net, .1 gateway, .7 broadcast: .2-.6
  const got = [1, 2, 3, 4, 5].map(() => numToIp(ipam.allocate()));
  t.deepEqual(got, ['10.9.8.2', '10.9.8.3', '10.9.8.4', '10.9.8.5', '10.9.8.6']);
  t.throws(() => ipam.allocate(), { instanceOf: FailedPreconditionError });
  ipam.release(ipToNum('10.9.8.3'));
  t.is(numToIp(ipam.allocate()), '10.9.8.3');
  t.throws(() => parseSubnet('10.9.8.1/24'), { instanceOf: InvalidArgumentError });
  t.throws(() => parseSubnet('300.1.1.0/24'), { instanceOf: InvalidArgumentError });
  t.throws(() => parseSubnet('10.0.0.0/31'), { instanceOf: InvalidArgumentError });
});

test('rules: loopback-only ports are DNATed for 127.0.0.1 alone, and PREROUTING never DNATs 127/8', (t) => {
  const cfg: NetConfig = { bridge: 'berth-x', subnet: parseSubnet('10.1.2.0/24'), gateway: '10.1.2.1', suffix: '-X' };
  const [lo, all] = portRules(cfg, '10.1.2.5', [
    { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80 },
    { proto: 'udp', hostIp: '0.0.0.0', hostPort: 5353, containerPort: 53 },
  ]);
  t.deepEqual(lo.args.slice(0, 2), ['-d', '127.0.0.1/32']);
  t.false(all.args.includes('-d'));
  t.true(all.args.join(' ').includes('-p udp -m udp --dport 5353 -j DNAT --to-destination 10.1.2.5:53'));
  const pre = jumps(cfg).find((j) => j.table === 'nat' && j.chain === 'PREROUTING')!;
  t.is(pre.args.slice(0, 3).join(' '), '! -d 127.0.0.0/8');
  const guard = baseRules(cfg).find((r) => r.table === 'raw')!;
  t.is(guard.args.join(' '), '-d 127.0.0.0/8 ! -i lo -j DROP');
});

test('the executor writes whole chains: applying twice gives the same rules, remove leaves nothing', async (t) => {
  const suffix = `-U${randomBytes(3).toString('hex')}`;
  const cfg: NetConfig = { bridge: `berth-u${suffix.slice(2)}`, subnet: parseSubnet('10.252.3.0/24'), gateway: '10.252.3.1', suffix };
  const ex = new IptablesExecutor();
  const mine = () => execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l.includes(suffix) && !l.startsWith('#'));
  t.teardown(() => ex.remove(ownChains(suffix)));
  const rules = [...baseRules(cfg), ...portRules(cfg, '10.252.3.2', [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 18999, containerPort: 80 }])];
  await ex.apply(ownChains(suffix), rules, jumps(cfg));
  const once = mine();
  t.is(once.filter((l) => l.startsWith('-A ') && !l.startsWith(`-A BERTH`)).length, 5, once.join('\n')); // the five jumps
  t.is(once.filter((l) => l.includes('--dport 18999')).length, 1);
  await ex.apply(ownChains(suffix), rules, jumps(cfg));
  t.deepEqual(mine(), once);
  // A rewrite of the DNAT chain alone drops the port rule and keeps everything else.
  await ex.apply(ownChains(suffix).filter((c) => c.chain.startsWith('BERTH-DNAT')), []);
  t.is(mine().filter((l) => l.includes('--dport 18999')).length, 0);
  t.is(mine().length, once.length - 1);
  await ex.remove(ownChains(suffix));
  t.deepEqual(mine(), []);
  await ex.remove(ownChains(suffix)); // twice is harmless
});

test('port reservations: one winner of many, the loser told who holds it; a host process holding a port is named too', async (t) => {
  const r = new PortReservations();
  t.teardown(() => r.releaseAll());
  const req = { proto: 'tcp' as const, containerPort: 80, hostIp: '127.0.0.1', hostPortLo: 0, hostPortHi: 0 };
  const [first] = await r.reserve('a', 'alpha', [req]);
  const fixed = { ...req, hostPortLo: first.hostPort, hostPortHi: first.hostPort };
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => r.reserve(`b${i}`, `beta${i}`, [{ ...fixed, hostIp: '0.0.0.0' }])));
  t.is(results.filter((x) => x.status === 'fulfilled').length, 0);
  for (const x of results) t.true(x.status === 'rejected' && x.reason instanceof ConflictError && /published by container alpha/.test(x.reason.message));
  r.release('a');
  const again = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => r.reserve(`c${i}`, `gamma${i}`, [fixed])));
  t.is(again.filter((x) => x.status === 'fulfilled').length, 1);
  r.releaseAll();
  const net = await import('node:net');
  const holder = net.createServer();
  await new Promise<void>((res) => holder.listen(first.hostPort, '127.0.0.1', res));
  t.teardown(() => holder.close());
  const e = await t.throwsAsync(r.reserve('d', 'delta', [fixed]), { instanceOf: ConflictError });
  t.regex(e!.message, /in use by another process/);
});
