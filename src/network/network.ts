import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { writeFileAtomic } from '../../volumes/shared/atomic';
import { IptablesExecutor, type Executor } from './iptables';
import { Ipam } from './ipam';
import { formatSubnet, gatewayOf, ipToNum, numToIp, overlaps, parseSubnet, subnetOf, type Subnet } from './ipv4';
import { checkClaims, claimBridge, claimRule, ownsBridge, ownsChains, withHostLock } from './claims';
import { attach, deleteLink, ensureBridge, linksOn } from './links';
import { portRequests } from './mappings';
import { containerResolvConf } from './resolv';
import { PortReservations, type PortRequest } from './reservations';
import { baseRules, chainsOf, jumps, ownChains, portRules, ruleLine, type NetConfig, type PublishedPort, type Rule } from './rules';

/**
 * The daemon's bridge network: one bridge, a veth per container, addresses from the
 * daemon's subnet, published ports reserved with real sockets and forwarded by DNAT
 * rules, all rules in the daemon's own chains. Chosen once per data root and kept in
 * <root>/network.json; flags given to a later start win.
 */

export type NetworkMode = 'bridge' | 'none' | 'host';

export interface Endpoint {
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  MacAddress: string;
}

/** What a container record keeps about its network. */
export interface ContainerNetwork {
  Mode: NetworkMode;
  /** Its address on the bridge, for life (bridge mode). */
  Endpoint?: Endpoint;
  /** The host ports of the current run (empty when it is not running). */
  Ports?: PublishedPort[];
}

export interface NetworkOptions {
  /** The daemon's data root (network.json is kept there). */
  root: string;
  /** Is this the default data root? It alone gets berth0 by default; any other root a bridge derived from it. */
  defaultRoot?: boolean;
  bridge?: string;
  subnet?: string;
  iptablesSuffix?: string;
  /** The host's resolver files, first that names a nameserver wins. */
  resolvConfFiles?: string[];
  executor?: Executor;
  log?: (msg: string) => void;
}

export const DEFAULT_BRIDGE = 'berth0';
const BRIDGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const SUFFIX = /^[A-Za-z0-9_-]{0,16}$/;

/**
 * The bridge of a data root that is not the default one, when no --bridge is given:
 * derived from the root, so a second daemon never lands on another's berth0.
 */
export function derivedBridge(root: string): string {
  return `berth-${createHash('sha256').update(root).digest('hex').slice(0, 6)}`;
}

/** Docker's default-bridge candidates, then smaller private ranges. */
function* candidates(): Generator<string> {
  for (let b = 17; b <= 31; b++) yield `172.${b}.0.0/16`;
  for (let c = 0; c < 256; c += 16) yield `192.168.${c}.0/20`;
  for (let b = 89; b < 256; b++) yield `10.${b}.0.0/16`;
}

/** Every IPv4 destination the host routes already (except default routes), with its device. */
function hostRoutes(): Array<{ subnet: Subnet; dev: string }> {
  let routes: Array<{ dst: string; dev?: string }> = [];
  try {
    routes = JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }) || '[]');
  } catch {
    return [];
  }
  const out: Array<{ subnet: Subnet; dev: string }> = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default') continue;
    const [ip, p] = r.dst.split('/');
    try {
      out.push({ subnet: subnetOf(ipToNum(ip), p === undefined ? 32 : Number(p)), dev: r.dev ?? '' });
    } catch {
      // not an address we understand (multicast names): not in our way
    }
  }
  return out;
}

function pickSubnet(bridge: string): Subnet {
  const taken = hostRoutes().filter((r) => r.dev !== bridge && r.subnet.base !== 0x7f000000);
  for (const c of candidates()) {
    const s = parseSubnet(c);
    if (!taken.some((r) => overlaps(r.subnet, s))) return s;
  }
  throw new InvalidArgumentError('no free private subnet for the bridge', { hint: 'give the daemon one with --subnet, e.g. --subnet 10.200.0.0/24' });
}

function macOf(ip: number): string {
  return ['02', '42', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** The host end of a container's veth pair. */
export function vethName(id: string): string {
  return `bv${id.slice(0, 12)}`;
}

export function networkMode(mode: string | undefined): NetworkMode {
  const m = mode || 'default';
  if (m === 'default' || m === 'bridge') return 'bridge';
  if (m === 'none' || m === 'host') return m;
  if (m.startsWith('container:')) {
    throw new InvalidArgumentError(`network mode ${m} is not supported`, { hint: 'use --network bridge (the default), host or none' });
  }
  throw new NotFoundError(`network ${m} not found`, { hint: 'berth has the networks bridge (the default), host and none' });
}

/**
 * Check a create body's ports against the network mode: the reservation requests, and
 * Docker's warnings. Publishing on `none` is an error; on `host` the ports are ignored
 * with Docker's warning (the container uses the host's ports directly).
 */
export function checkPorts(
  mode: NetworkMode,
  exposed: Record<string, unknown> | null | undefined,
  bindings: Parameters<typeof portRequests>[1],
  publishAll: boolean,
): { requests: PortRequest[]; warnings: string[] } {
  const requests = portRequests(exposed, bindings, publishAll);
  const explicit = requests.length > 0 && Object.keys(bindings ?? {}).length > 0;
  if (mode === 'none' && explicit) {
    throw new InvalidArgumentError('ports cannot be published with --network none', { hint: 'drop -p, or use --network bridge (the default)' });
  }
  if (mode !== 'bridge') {
    const warnings = explicit ? ['Published ports are discarded when using host network mode'] : [];
    return { requests: [], warnings };
  }
  return { requests, warnings: [] };
}

export class BridgeNetwork {
  readonly reservations = new PortReservations();
  private readonly ipam: Ipam;
  private readonly executor: Executor;
  private readonly log: (msg: string) => void;
  /** Published ports of running containers: what the DNAT chain holds. */
  private readonly active = new Map<string, { ip: string; ports: PublishedPort[] }>();
  private queue: Promise<void> = Promise.resolve();
  private pending?: Promise<void>;
  /** The loopback resolver the gateway forwards to (a host with only 127.0.0.53 and the like). */
  private readonly dnsForward: string[];
  private readonly resolv: string;
  /** The daemon's own rules (baseRules), computed once. */
  private readonly rules: Rule[];
  private readonly root: string;

  private constructor(
    readonly config: NetConfig,
    opts: NetworkOptions,
  ) {
    this.ipam = new Ipam(config.subnet);
    this.executor = opts.executor ?? new IptablesExecutor();
    this.log = opts.log ?? (() => undefined);
    const r = containerResolvConf(config.gateway, opts.resolvConfFiles);
    this.resolv = r.text;
    this.dnsForward = r.forwardTo ? [r.forwardTo] : [];
    // The claim comes first in the guard chain: whole-chain rewrites keep it.
    this.rules = [claimRule(config.suffix, opts.root), ...baseRules(config, this.dnsForward)];
    this.root = opts.root;
  }

  /** Work out the configuration (flags, else network.json, else defaults), without touching the host. */
  static configure(opts: NetworkOptions): NetConfig {
    return BridgeNetwork.read(opts).config;
  }

  private static read(opts: NetworkOptions): { config: NetConfig; saved: { bridge?: string; subnet?: string; suffix?: string } } {
    const file = path.join(opts.root, 'network.json');
    let saved: { bridge?: string; subnet?: string; suffix?: string } = {};
    try {
      saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      // first start
    }
    const bridge = opts.bridge ?? saved.bridge ?? (opts.defaultRoot ? DEFAULT_BRIDGE : derivedBridge(opts.root));
    if (!BRIDGE_NAME.test(bridge)) {
      throw new InvalidArgumentError(`invalid bridge name ${JSON.stringify(bridge)}`, { hint: 'up to 15 letters, digits, _ . or -, e.g. berth1' });
    }
    const suffix = opts.iptablesSuffix ?? (opts.bridge !== undefined || saved.suffix === undefined ? (bridge === DEFAULT_BRIDGE ? '' : `-${bridge.toUpperCase()}`) : saved.suffix);
    if (!SUFFIX.test(suffix)) {
      throw new InvalidArgumentError(`invalid iptables chain suffix ${JSON.stringify(suffix)}`, { hint: 'up to 16 letters, digits, _ or -' });
    }
    const subnetText = opts.subnet ?? (saved.bridge === bridge ? saved.subnet : undefined);
    const subnet = subnetText ? parseSubnet(subnetText) : pickSubnet(bridge);
    return { config: { bridge, subnet, gateway: numToIp(gatewayOf(subnet)), suffix }, saved };
  }

  /**
   * Set the host up for the daemon: the bridge, the daemon's chains and jumps, and the
   * DNAT rules of the containers still running (`running`), all in one rules transaction.
   */
  static async open(opts: NetworkOptions, running: Array<{ id: string; name: string; ip: string; ports: PublishedPort[] }> = [], ownIds: string[] = []): Promise<BridgeNetwork> {
    const { config, saved } = BridgeNetwork.read(opts);
    const net = new BridgeNetwork(config, opts);
    for (const r of running) {
      for (const problem of await net.reservations.readopt(r.id, r.name, r.ports)) net.log(`${r.id}: ${problem}; its DNAT rule stays`);
      net.active.set(r.id, { ip: r.ip, ports: r.ports });
    }
    // Checked and claimed under the host-wide lock: of two daemons that want one bridge, one wins.
    await withHostLock(async () => {
      await checkClaims({ root: opts.root, bridge: config.bridge, suffix: config.suffix, recorded: saved, ownVeths: new Set(ownIds.map(vethName)), log: net.log });
      await ensureBridge(config.bridge, `${config.gateway}/${config.subnet.prefix}`);
      await claimBridge(config.bridge, opts.root);
      await net.executor.apply(ownChains(config.suffix), [...net.rules, ...net.portRulesAll()], jumps(config));
    }).catch((e) => {
      net.reservations.releaseAll();
      throw e;
    });
    await writeFileAtomic(path.join(opts.root, 'network.json'), JSON.stringify({ bridge: config.bridge, subnet: formatSubnet(config.subnet), suffix: config.suffix }, null, 2) + '\n');
    return net;
  }

  /** The rules a daemon with these options installs at start (`berth daemon --dry-run`). */
  static plan(opts: NetworkOptions): string[] {
    const config = BridgeNetwork.configure(opts);
    const fwd = containerResolvConf(config.gateway, opts.resolvConfFiles).forwardTo;
    return [
      ...ownChains(config.suffix).map((c) => `-t ${c.table} -N ${c.chain}`),
      ...jumps(config).map((j) => ruleLine(j, '-I')),
      ...[claimRule(config.suffix, opts.root), ...baseRules(config, fwd ? [fwd] : [])].map((r) => ruleLine(r)),
    ];
  }

  /** A container's address from the records, at start. */
  adopt(ep: Endpoint): void {
    if (!this.ipam.take(ipToNum(ep.IPAddress))) this.log(`address ${ep.IPAddress} is outside ${formatSubnet(this.config.subnet)} or taken twice`);
  }

  allocate(): Endpoint {
    const ip = this.ipam.allocate();
    return { IPAddress: numToIp(ip), IPPrefixLen: this.config.subnet.prefix, Gateway: this.config.gateway, MacAddress: macOf(ip) };
  }

  free(ep: Endpoint | undefined): void {
    if (ep && ep.Gateway === this.config.gateway) this.ipam.release(ipToNum(ep.IPAddress));
  }

  /** Reserve host ports for a run; all or nothing. */
  publish(id: string, name: string, requests: PortRequest[]): Promise<PublishedPort[]> {
    return this.reservations.reserve(id, name, requests);
  }

  /** Plug a created container (its init is `pid`) into the bridge. */
  async connect(id: string, pid: number, ep: Endpoint): Promise<void> {
    await attach({ hostIf: vethName(id), bridge: this.config.bridge, pid, address: ep.IPAddress, prefix: ep.IPPrefixLen, gateway: ep.Gateway, mac: ep.MacAddress });
  }

  /** Forward the run's published ports to it. */
  async activate(id: string, ip: string, ports: PublishedPort[]): Promise<void> {
    if (ports.length === 0) return;
    this.active.set(id, { ip, ports });
    await this.sync();
  }

  /** A run ended (or failed to start): its ports, rules and veth go. */
  async deactivate(id: string): Promise<void> {
    this.reservations.release(id);
    if (this.active.delete(id)) await this.sync().catch((e) => this.log(`${id}: removing its port rules: ${(e as Error).message}`));
    await deleteLink(vethName(id));
  }

  /**
   * Remove the veths a crash left on our bridge: only those of this daemon's own
   * containers (`known`) that are not running. Anything else on the bridge is left alone.
   */
  async pruneLinks(running: Set<string>, known: string[]): Promise<void> {
    const stale = new Set(known.filter((id) => !running.has(id)).map(vethName));
    const keep = new Set([...running].map(vethName));
    for (const l of await linksOn(this.config.bridge)) {
      if (stale.has(l)) await deleteLink(l);
      else if (!keep.has(l)) this.log(`${l} on ${this.config.bridge} is not one of this daemon's containers: left alone`);
    }
  }

  /** The rules a container with these ports would get (`berth run --dry-run`). */
  planFor(ip: string, ports: PublishedPort[]): string[] {
    return portRules(this.config, ip, ports).map((r) => ruleLine(r));
  }

  /** The next address `allocate` would give, without taking it. */
  peekAddress(): string {
    return numToIp(this.ipam.peek());
  }

  /** /etc/resolv.conf for a bridged container (resolv.ts). */
  resolvConf(): string {
    return this.resolv;
  }

  /**
   * Undo everything unless containers still run (live restore keeps their network). Only
   * what this root still claims is removed: a bridge or chains taken over meanwhile stay.
   */
  async close(anyRunning: boolean): Promise<void> {
    this.reservations.releaseAll();
    await this.queue;
    if (anyRunning) return;
    await withHostLock(async () => {
      if (await ownsChains(this.config.suffix, this.root)) await this.executor.remove(ownChains(this.config.suffix));
      else this.log(`chains BERTH-*${this.config.suffix} are no longer claimed by ${this.root}: left alone`);
      if (ownsBridge(this.config.bridge, this.root)) await deleteLink(this.config.bridge);
      else this.log(`bridge ${this.config.bridge} is no longer claimed by ${this.root}: left alone`);
    });
  }

  info(): { bridge: string; subnet: string; gateway: string; chains: string[] } {
    const c = chainsOf(this.config.suffix);
    return { bridge: this.config.bridge, subnet: formatSubnet(this.config.subnet), gateway: this.config.gateway, chains: [c.guard, c.dnat, c.post, c.fwd] };
  }

  private portRulesAll(): Rule[] {
    return [...this.active.values()].flatMap((a) => portRules(this.config, a.ip, a.ports));
  }

  /** Rewrite the DNAT chain from what is active now; calls that arrive meanwhile share the next write. */
  private sync(): Promise<void> {
    if (this.pending) return this.pending;
    const c = chainsOf(this.config.suffix);
    const p = this.queue.then(() => {
      this.pending = undefined;
      const dns = this.rules.filter((r) => r.chain === c.dnat);
      return this.executor.apply([{ table: 'nat', chain: c.dnat }], [...dns, ...this.portRulesAll()]);
    });
    this.pending = p;
    this.queue = p.catch(() => undefined);
    return p;
  }
}
