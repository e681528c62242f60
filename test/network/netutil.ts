import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { ipToNum, numToIp } from '../../src/network/ipv4';
import { TestDaemon, testNetwork } from '../helpers/daemon';
import { runCommand } from '../helpers/proc';

/**
 * Helpers for the bridge network tests. Every packet they send goes to loopback, the
 * host's own addresses, or a namespace/container the test made (network etiquette).
 */

export interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** runCommand(), failing the test (with the output) when the command fails. */
export async function must(t: ExecutionContext, cmd: string, args: string[]): Promise<string> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) t.fail(`${cmd} ${args.join(' ')} -> ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The daemon's bridge, chain suffix and subnet (what TestDaemon gave it). */
export function netOf(d: TestDaemon): { bridge: string; suffix: string; subnet: string; gateway: string } {
  const a = testNetwork(d.root);
  const get = (flag: string) => a[a.indexOf(flag) + 1];
  const subnet = get('--subnet');
  const gateway = numToIp(ipToNum(subnet.split('/')[0]) + 1);
  return { bridge: get('--bridge'), suffix: get('--iptables-suffix'), subnet, gateway };
}

/** HTTP GET from the host with curl (exit code 0 and the body, or curl's failure). */
export function curl(url: string, args: string[] = [], seconds = 3): Promise<Out> {
  return runCommand('curl', ['-sS', '--noproxy', '*', '-m', String(seconds), ...args, url], { timeout: (seconds + 5) * 1000 });
}

/**
 * HTTP GET from inside a container with busybox wget. (busybox 1.35's `wget -T` segfaults,
 * so the time limit is busybox `timeout`.)
 */
export function wgetIn(d: TestDaemon, container: string, url: string, seconds = 4): Promise<Out> {
  return d.berth(['exec', container, 'timeout', String(seconds), 'wget', '-q', '-O', '-', url]);
}

export async function runOk(t: ExecutionContext, d: TestDaemon, args: string[]): Promise<string> {
  const r = await d.berth(args);
  t.is(r.code, 0, `berth ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Container facts: its address, hostname, pid, host ports of container port 80/tcp. */
export async function facts(d: TestDaemon, ref: string): Promise<{ id: string; ip: string; hostname: string; pid: number; ports: Array<{ ip: string; port: number }> }> {
  const i = (await d.containers.inspect(ref)) as unknown as {
    Id: string;
    Config: { Hostname: string };
    State: { Pid: number };
    NetworkSettings: { IPAddress: string; Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> };
  };
  const ports = (i.NetworkSettings.Ports?.['80/tcp'] ?? []).map((p) => ({ ip: p.HostIp, port: Number(p.HostPort) }));
  return { id: i.Id, ip: i.NetworkSettings.IPAddress, hostname: i.Config.Hostname, pid: i.State.Pid, ports };
}

/** The host port published for container port 80 on `hostIp`. */
export function portOn(ports: Array<{ ip: string; port: number }>, hostIp: string): number {
  const p = ports.find((x) => x.ip === hostIp);
  if (!p) throw new Error(`no port on ${hostIp}: ${JSON.stringify(ports)}`);
  return p.port;
}

/** The rules of one chain (`iptables -S`), '' lines dropped. */
export async function chainRules(table: string, chain: string): Promise<string[]> {
  const r = await runCommand('iptables', ['-w', '5', '-t', table, '-S', chain]);
  return r.stdout.split('\n').filter((l) => l.startsWith('-A '));
}

/** Packets dropped so far by every BERTH-GUARD chain's DROP rule, by chain (raw table). */
export async function guardDrops(): Promise<Map<string, number>> {
  const r = await runCommand('iptables-save', ['-c', '-t', 'raw']);
  const m = new Map<string, number>();
  for (const l of r.stdout.split('\n')) {
    const x = /^\[(\d+):\d+\] -A (BERTH-GUARD\S*) .*-j DROP/.exec(l);
    if (x) m.set(x[2], (m.get(x[2]) ?? 0) + Number(x[1]));
  }
  return m;
}

export function linkExists(name: string): Promise<boolean> {
  return runCommand('ip', ['link', 'show', 'dev', name]).then((r) => r.code === 0);
}

/** The links enslaved to `bridge`. */
export async function linksOn(bridge: string): Promise<string[]> {
  const r = await runCommand('ip', ['-j', 'link', 'show', 'master', bridge]);
  return (JSON.parse(r.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** Whether a host process can bind ip:port (tcp) right now. */
export function canBind(port: number, host: string): Promise<boolean | string> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

export const hex = (n: number) => randomBytes(n).toString('hex');

/**
 * A /30 in 10.250.0.0/16 that no host route (any table) overlaps. The host end gets .1 of
 * it, the neighbour .2.
 */
export async function freeSlash30(): Promise<{ host: string; peer: string; cidr: string }> {
  const routes = JSON.parse((await runCommand('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])).stdout || '[]') as Array<{ dst: string }>;
  // [first, last] address of every route's destination (default routes aside).
  const taken = routes
    .filter((r) => r.dst && r.dst !== 'default' && /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(r.dst))
    .map((r) => {
      const [ip, p] = r.dst.split('/');
      const prefix = p === undefined ? 32 : Number(p);
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
      const first = (ipToNum(ip) & mask) >>> 0;
      return [first, first + 2 ** (32 - prefix) - 1];
    });
  for (let i = 0; i < 50; i++) {
    const b = randomBytes(2);
    const first = ipToNum(`10.250.${b[0]}.${b[1] & 0xfc}`);
    const last = first + 3;
    if (taken.some(([lo, hi]) => lo <= last && first <= hi)) continue;
    return { host: numToIp(first + 1), peer: numToIp(first + 2), cidr: `${numToIp(first)}/30` };
  }
  throw new Error('no free /30 in 10.250.0.0/16');
}

/**
 * A neighbour host: network namespace `bn-<hex>` joined to the host by a veth pair
 * (`bnh<hex>` on the host, `bnp<hex>` inside), addresses from a free /30. Removed in teardown.
 */
export async function neighbour(t: ExecutionContext): Promise<{ ns: string; hostIf: string; peerIf: string; hostIp: string; peerIp: string; exec: (args: string[], timeoutMs?: number) => Promise<Out> }> {
  const tag = hex(3);
  const ns = `bn-${tag}`;
  const hostIf = `bnh${tag}`;
  const peerIf = `bnp${tag}`;
  const a = await freeSlash30();
  t.teardown(async () => {
    await runCommand('ip', ['netns', 'del', ns]);
    await runCommand('ip', ['link', 'del', 'dev', hostIf]);
  });
  await must(t, 'ip', ['netns', 'add', ns]);
  await must(t, 'ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', ns]);
  await must(t, 'ip', ['addr', 'add', `${a.host}/30`, 'dev', hostIf]);
  await must(t, 'ip', ['link', 'set', hostIf, 'up']);
  const exec = (args: string[], timeoutMs?: number) => runCommand('ip', ['netns', 'exec', ns, ...args], { timeout: timeoutMs });
  for (const c of [
    ['ip', 'addr', 'add', `${a.peer}/30`, 'dev', peerIf],
    ['ip', 'link', 'set', peerIf, 'up'],
    ['ip', 'link', 'set', 'lo', 'up'],
  ]) {
    const r = await exec(c);
    if (r.code !== 0) t.fail(`${c.join(' ')}: ${r.stderr}`);
  }
  return { ns, hostIf, peerIf, hostIp: a.host, peerIp: a.peer, exec };
}

/**
 * The CVE-2020-8558 attacker's setup, run in a network namespace: its own loopback gone
 * (local 127/8 routes deleted, lo down), martian checks off on its side, and 127.0.0.1
 * routed via `via` out of `dev`.
 */
export function hijackLoopback(via: string, dev: string): string[][] {
  return [
    ['ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local'],
    ['ip', 'route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local'],
    ['ip', 'link', 'set', 'lo', 'down'],
    ['sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', `net.ipv4.conf.${dev}.route_localnet=1`],
    ['ip', 'route', 'add', '127.0.0.1/32', 'via', via, 'dev', dev],
  ];
}

export { ipToNum };
