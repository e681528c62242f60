import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { FailedPreconditionError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';

/**
 * The links of the bridge network, through iproute2: the daemon's bridge, and one veth
 * pair per container whose inner end is created straight inside the container's network
 * namespace (named eth0 there). Nothing here keeps state; the kernel is the state.
 */

interface LinkInfo {
  ifname: string;
  master?: string;
  linkinfo?: { info_kind?: string };
}

async function showLinks(args: string[]): Promise<LinkInfo[]> {
  const out = await tool('ip', ['-j', '-d', 'link', 'show', ...args]).catch(() => '[]');
  return JSON.parse(out || '[]') as LinkInfo[];
}

export function linkExists(name: string): boolean {
  return fs.existsSync(`/sys/class/net/${name}`);
}

/** Make (or adopt) the bridge, give it the gateway address, bring it up, route localhost through it. */
export async function ensureBridge(name: string, gatewayCidr: string): Promise<void> {
  if (linkExists(name)) {
    const [info] = await showLinks(['dev', name]);
    if (info?.linkinfo?.info_kind !== 'bridge') {
      throw new FailedPreconditionError(`${name} exists and is not a bridge`, { hint: 'give the daemon another --bridge name' });
    }
  } else {
    // A MAC of its own, set once: a bridge left to itself takes the lowest MAC of its ports,
    // so it changed whenever a veth came or went (a repaired one, say), and every container's
    // ARP entry for the gateway pointed nowhere until it went stale — DNS to the gateway timed
    // out for 15 s and more. Docker sets a random one too.
    await tool('ip', ['link', 'add', 'name', name, 'address', randomMac(), 'type', 'bridge']);
  }
  await tool('ip', ['-batch', '-'], { input: `${pinnedMac(name)}addr replace ${gatewayCidr} dev ${name}\nlink set ${name} up\n` });
  // Packets from 127.0.0.1, DNATed to a container, leave through the bridge: the kernel
  // must not call them martian there. The raw-table guard keeps this from opening
  // localhost to the bridge (CVE-2020-8558).
  await fs.promises.writeFile(`/proc/sys/net/ipv4/conf/${name}/route_localnet`, '1\n');
  // Containers reach the outside and each other's published ports through the host.
  await fs.promises.writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = crypto.randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * For a bridge made before its MAC was set (an older berth's, adopted at start): the batch
 * line that pins the address it has now (addr_assign_type 3 is NET_ADDR_SET), so it stops
 * following its ports while containers hold it in their ARP caches. Nothing for one pinned.
 */
function pinnedMac(name: string): string {
  try {
    if (fs.readFileSync(`/sys/class/net/${name}/addr_assign_type`, 'utf8').trim() === '3') return '';
    const mac = fs.readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim();
    return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) ? `link set dev ${name} address ${mac}\n` : '';
  } catch {
    return '';
  }
}

export async function deleteLink(name: string): Promise<void> {
  if (linkExists(name)) await tool('ip', ['link', 'del', 'dev', name]).catch(() => undefined);
}

/** The ports (veths) enslaved to `bridge`. */
export async function linksOn(bridge: string): Promise<string[]> {
  if (!linkExists(bridge)) return [];
  return (await showLinks(['master', bridge])).map((l) => l.ifname);
}

export interface Attachment {
  /** The host end's name, e.g. bv0123456789ab. */
  hostIf: string;
  bridge: string;
  /** The container's init pid: its network namespace is /proc/<pid>/ns/net. */
  pid: number;
  address: string;
  prefix: number;
  gateway: string;
  mac: string;
  /** The name inside (default eth0). */
  ifname?: string;
  /** Add the default route via this gateway (default true). */
  route?: boolean;
}

/**
 * Plug a container into the bridge: the veth pair with its inner end made in the
 * container's namespace, then address, link and default route inside (one `ip -batch`
 * in each namespace, so two processes in all).
 */
export async function attach(a: Attachment): Promise<void> {
  await deleteLink(a.hostIf); // a stale one from a run a crash interrupted
  await tool('ip', ['-batch', '-'], { input: [
    `link add name ${a.hostIf} type veth peer name ${a.ifname ?? 'eth0'} address ${a.mac} netns ${a.pid}`,
    `link set ${a.hostIf} master ${a.bridge}`,
    // Hairpin: with br_netfilter, a container's packet to its own published port is
    // DNATed back to it and must leave by the bridge port it came in on.
    `link set dev ${a.hostIf} type bridge_slave hairpin on`,
    `link set ${a.hostIf} up`,
    '',
  ].join('\n') });
  try {
    await tool('nsenter', [`--net=/proc/${a.pid}/ns/net`, 'ip', '-batch', '-'], { input: [
      `addr add ${a.address}/${a.prefix} dev ${a.ifname ?? 'eth0'}`,
      'link set lo up',
      `link set ${a.ifname ?? 'eth0'} up`,
      ...(a.route === false ? [] : [`route replace default via ${a.gateway}`]),
      '',
    ].join('\n') });
  } catch (e) {
    await deleteLink(a.hostIf);
    throw e;
  }
}

/** The lowest ethN not yet in the namespace of `pid` (a hot-plugged network's name inside). */
export async function nextIfName(pid: number): Promise<string> {
  const out = await tool('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-j', 'link', 'show']).catch(() => '[]');
  const names = new Set((JSON.parse(out || '[]') as LinkInfo[]).map((l) => l.ifname));
  for (let i = 0; ; i++) if (!names.has(`eth${i}`)) return `eth${i}`;
}

/** Does the namespace of `pid` have a default route? */
export async function hasDefaultRoute(pid: number): Promise<boolean> {
  const out = await tool('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-j', '-4', 'route', 'show', 'default']).catch(() => '[]');
  return (JSON.parse(out || '[]') as unknown[]).length > 0;
}

/**
 * Inside the container's namespace: 127.0.0.11:53 (what its resolv.conf names) goes to
 * the embedded DNS server on `gateway`, from the container's own address `ip` on that
 * network, as Docker's resolver is reached. The nat table there is the container's and
 * berth's alone, so it is rewritten whole. Without a target, the redirect goes.
 */
export async function redirectDns(pid: number, target: { gateway: string; ip: string } | undefined): Promise<void> {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
  if (target) {
    for (const proto of ['udp', 'tcp']) {
      lines.push(`-A OUTPUT -d 127.0.0.11/32 -p ${proto} -m ${proto} --dport 53 -j DNAT --to-destination ${target.gateway}:53`);
      lines.push(`-A POSTROUTING -s 127.0.0.0/8 -d ${target.gateway}/32 -p ${proto} -m ${proto} --dport 53 -j SNAT --to-source ${target.ip}`);
    }
  }
  lines.push('COMMIT', '');
  const ns = `--net=/proc/${pid}/ns/net`;
  // The DNATed packet leaves by eth* with a loopback source until SNAT rewrites it.
  await tool('nsenter', [ns, 'sh', '-c', 'for f in /proc/sys/net/ipv4/conf/*/route_localnet; do echo 1 > "$f"; done']);
  await tool('nsenter', [ns, 'iptables-restore', '-w', '5'], { input: lines.join('\n') });
}
