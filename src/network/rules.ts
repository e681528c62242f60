import { formatSubnet, type Subnet } from './ipv4';

/**
 * The iptables rules berth wants, computed and never applied here (rules as plans; the
 * executor in iptables.ts applies them). Everything lives in the daemon's own chains,
 * suffixed per daemon so daemons side by side never touch each other's rules; the
 * built-in chains get one jump each.
 *
 *   raw    PREROUTING  -> BERTH-GUARD  drop anything for 127.0.0.0/8 that did not come in
 *                                      on lo (CVE-2020-8558: route_localnet is on for the
 *                                      bridge, so without this a container or a neighbour
 *                                      could reach the host's loopback services)
 *   nat    PREROUTING  -> BERTH-DNAT   published ports, for packets to a local address
 *                                      other than 127/8 (other hosts, containers: hairpin)
 *   nat    OUTPUT      -> BERTH-DNAT   the same for the host itself, 127.0.0.1 included:
 *                                      localhost reaches a container through the kernel
 *   nat    POSTROUTING -> BERTH-POST   MASQUERADE: outbound, loopback sources, hairpin
 *   filter FORWARD     -> BERTH-FWD    accept what leaves the bridge and what was DNATed in
 */

export type Table = 'raw' | 'nat' | 'filter';

export interface Rule {
  table: Table;
  chain: string;
  args: string[];
}

export interface Chains {
  guard: string;
  dnat: string;
  post: string;
  fwd: string;
}

export interface NetConfig {
  bridge: string;
  subnet: Subnet;
  gateway: string;
  /** Appended to every chain name: '' for the default daemon, e.g. '-T1A2B3' for a test's. */
  suffix: string;
}

export function chainsOf(suffix: string): Chains {
  return { guard: `BERTH-GUARD${suffix}`, dnat: `BERTH-DNAT${suffix}`, post: `BERTH-POST${suffix}`, fwd: `BERTH-FWD${suffix}` };
}

export function ownChains(suffix: string): Array<{ table: Table; chain: string }> {
  const c = chainsOf(suffix);
  return [
    { table: 'raw', chain: c.guard },
    { table: 'nat', chain: c.dnat },
    { table: 'nat', chain: c.post },
    { table: 'filter', chain: c.fwd },
  ];
}

/** The jumps from the built-in chains into ours (inserted first, so they run before others'). */
export function jumps(cfg: NetConfig): Rule[] {
  const c = chainsOf(cfg.suffix);
  return [
    { table: 'raw', chain: 'PREROUTING', args: ['-j', c.guard] },
    { table: 'nat', chain: 'PREROUTING', args: ['!', '-d', '127.0.0.0/8', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat] },
    { table: 'nat', chain: 'OUTPUT', args: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat] },
    { table: 'nat', chain: 'POSTROUTING', args: ['-j', c.post] },
    { table: 'filter', chain: 'FORWARD', args: ['-j', c.fwd] },
  ];
}

/** The daemon's own rules, whatever runs. `dnsFrom`: loopback resolvers the gateway forwards to. */
export function baseRules(cfg: NetConfig, dnsFrom: string[] = []): Rule[] {
  const c = chainsOf(cfg.suffix);
  const net = formatSubnet(cfg.subnet);
  const br = cfg.bridge;
  const rules: Rule[] = [
    { table: 'raw', chain: c.guard, args: ['-d', '127.0.0.0/8', '!', '-i', 'lo', '-j', 'DROP'] },
    { table: 'nat', chain: c.post, args: ['-s', net, '!', '-o', br, '-j', 'MASQUERADE'] },
    { table: 'nat', chain: c.post, args: ['-s', '127.0.0.0/8', '-o', br, '-j', 'MASQUERADE'] },
    { table: 'nat', chain: c.post, args: ['-s', net, '-o', br, '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'MASQUERADE'] },
    { table: 'filter', chain: c.fwd, args: ['-i', br, '-j', 'ACCEPT'] },
    { table: 'filter', chain: c.fwd, args: ['-o', br, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-j', 'ACCEPT'] },
  ];
  // A host whose resolver listens on loopback (systemd-resolved's 127.0.0.53): containers
  // ask the gateway, and the kernel hands the query to that resolver.
  if (dnsFrom.length > 0) {
    for (const proto of ['udp', 'tcp']) {
      rules.push({
        table: 'nat',
        chain: c.dnat,
        args: ['-i', br, '-d', `${cfg.gateway}/32`, '-p', proto, '--dport', '53', '-j', 'DNAT', '--to-destination', `${dnsFrom[0]}:53`],
      });
    }
  }
  return rules;
}

export interface PublishedPort {
  proto: 'tcp' | 'udp';
  /** '0.0.0.0' for every address of the host. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** One container's published ports: a DNAT rule each. */
export function portRules(cfg: NetConfig, containerIp: string, ports: PublishedPort[]): Rule[] {
  const c = chainsOf(cfg.suffix);
  return ports.map((p) => ({
    table: 'nat' as const,
    chain: c.dnat,
    args: [
      ...(p.hostIp === '0.0.0.0' ? [] : ['-d', `${p.hostIp}/32`]),
      '-p', p.proto, '-m', p.proto, '--dport', String(p.hostPort),
      '-j', 'DNAT', '--to-destination', `${containerIp}:${p.containerPort}`,
    ],
  }));
}

/** `-t nat -A BERTH-DNAT -p tcp ...`: a rule as a user would type it (dry runs, logs). */
export function ruleLine(r: Rule, op = '-A'): string {
  return ['-t', r.table, op, r.chain, ...r.args].join(' ');
}

/** A user-defined network, as the rules see it. */
export interface BridgeSpec {
  bridge: string;
  subnet: Subnet;
  internal: boolean;
}

/**
 * Isolation between the daemon's bridges, as Docker's: nothing goes from one bridge to
 * another, except to a published port (DNATed; that is how every network reaches them).
 * An internal network talks only within itself. These come first in the forward chain.
 */
export function isolationRules(suffix: string, bridges: BridgeSpec[]): Rule[] {
  const fwd = chainsOf(suffix).fwd;
  const out: Rule[] = [];
  for (const a of bridges) {
    if (a.internal) {
      out.push({ table: 'filter', chain: fwd, args: ['-i', a.bridge, '-o', a.bridge, '-j', 'ACCEPT'] });
      out.push({ table: 'filter', chain: fwd, args: ['-i', a.bridge, '-j', 'DROP'] });
      out.push({ table: 'filter', chain: fwd, args: ['-o', a.bridge, '-j', 'DROP'] });
      continue;
    }
    for (const b of bridges) {
      if (a.bridge === b.bridge || b.internal) continue;
      out.push({ table: 'filter', chain: fwd, args: ['-i', a.bridge, '-o', b.bridge, '-m', 'conntrack', '!', '--ctstate', 'DNAT', '-j', 'DROP'] });
    }
  }
  return out;
}

/** A user-defined network's own rules: outbound MASQUERADE, hairpin, forwarding (none when internal). */
export function userNetworkRules(suffix: string, n: BridgeSpec): Rule[] {
  if (n.internal) return [];
  const c = chainsOf(suffix);
  const net = formatSubnet(n.subnet);
  return [
    { table: 'nat', chain: c.post, args: ['-s', net, '!', '-o', n.bridge, '-j', 'MASQUERADE'] },
    { table: 'nat', chain: c.post, args: ['-s', '127.0.0.0/8', '-o', n.bridge, '-j', 'MASQUERADE'] },
    { table: 'nat', chain: c.post, args: ['-s', net, '-o', n.bridge, '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'MASQUERADE'] },
    { table: 'filter', chain: c.fwd, args: ['-i', n.bridge, '-j', 'ACCEPT'] },
    { table: 'filter', chain: c.fwd, args: ['-o', n.bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-j', 'ACCEPT'] },
  ];
}
