import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { isIPv4 } from 'node:net';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { writeFileAtomic } from '../../volumes/shared/atomic';
import { IptablesExecutor, type Executor } from './iptables';
import { Ipam } from './ipam';
import { contains, formatSubnet, gatewayOf, ipToNum, numToIp, parseSubnet } from './ipv4';
import { checkClaims, claimBridge, claimRule, claimedBy, ownsBridge, ownsChains, withHostLock } from './claims';
import { attach, deleteLink, ensureBridge, hasDefaultRoute, linkExists, linksOn, nextIfName, redirectDns } from './links';
import { EmbeddedDns, type DnsMember } from './dns-server';
import { NetworkSet, PREDEFINED, networkEvent, predefinedNetworkId, type NetworkEvent, type UserNet } from './user-networks';
import { parseLinks } from './container-links';
import { containerResolvConf } from './resolv';
import { PortReservations, type PortRequest } from './reservations';
import type { ContainerNetwork, Endpoint, NetworkMode, UserEndpoint } from './endpoints';
import { checkPorts, macOf, networkMode, recordedAddress, userVethName, vethName, type DirectoryEntry, type EndpointSettings } from './modes';
import { hostSubnets, pickSubnet } from './subnets';
import { baseRules, chainsOf, isolationRules, jumps, ownChains, portRules, ruleLine, userNetworkRules, type BridgeSpec, type NetConfig, type PublishedPort, type Rule } from './rules';

// The endpoint types (endpoints.ts), the modes and veth names (modes.ts): callers keep importing them from here.
export { checkPorts, networkMode, recordedAddress, userVethName, vethName };
export type { ContainerNetwork, DirectoryEntry, Endpoint, EndpointSettings, NetworkMode, UserEndpoint };

/**
 * The daemon's bridge network: one bridge, a veth per container, addresses from the
 * daemon's subnet, published ports reserved with real sockets and forwarded by DNAT
 * rules, all rules in the daemon's own chains. Chosen once per data root and kept in
 * <root>/network.json; flags given to a later start win.
 */

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
  /** Where network events go (`docker events`), and the engine id the default bridge's id derives from. */
  events?: (e: NetworkEvent) => void;
  engineId?: string;
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
  private readonly resolvFiles?: string[];
  /** The daemon's own rules (baseRules), computed once. */
  private readonly rules: Rule[];
  private readonly root: string;
  /** User-defined networks (user-networks.ts). */
  users!: NetworkSet;
  readonly dns: EmbeddedDns;
  private directory: () => DirectoryEntry[] = () => [];
  /** Changes whenever the directory's answer may have (the embedded DNS rebuilds its index then). */
  private directoryVersion: () => unknown = () => undefined;
  private readonly emit: (e: NetworkEvent) => void;
  /** Containers whose run is plugged in (started, or adopted at start): their stop is a disconnect event. */
  private readonly plugged = new Set<string>();
  private readonly bridgeId: string;

  private constructor(
    readonly config: NetConfig,
    opts: NetworkOptions,
  ) {
    this.ipam = new Ipam(config.subnet);
    this.executor = opts.executor ?? new IptablesExecutor();
    this.log = opts.log ?? (() => undefined);
    const r = containerResolvConf(config.gateway, opts.resolvConfFiles);
    this.resolv = r.text;
    this.resolvFiles = opts.resolvConfFiles;
    this.dnsForward = r.forwardTo ? [r.forwardTo] : [];
    // The claim comes first in the guard chain: whole-chain rewrites keep it.
    this.rules = [claimRule(config.suffix, opts.root), ...baseRules(config, this.dnsForward)];
    this.root = opts.root;
    this.emit = opts.events ?? (() => undefined);
    this.bridgeId = predefinedNetworkId(opts.engineId ?? '', 'bridge');
    this.dns = new EmbeddedDns(
      () => this.dnsMembers(),
      () => this.directoryVersion(),
      (ip) => this.users.all().some((n) => contains(n.subnet, ipToNum(ip))),
      undefined,
      this.log,
    );
  }

  /** Work out the configuration (flags, else network.json, else defaults), without touching the host. */
  static async configure(opts: NetworkOptions): Promise<NetConfig> {
    return (await BridgeNetwork.read(opts)).config;
  }

  private static async read(opts: NetworkOptions): Promise<{ config: NetConfig; saved: { bridge?: string; subnet?: string; suffix?: string } }> {
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
    const subnet = subnetText ? parseSubnet(subnetText) : pickSubnet(await hostSubnets(bridge));
    return { config: { bridge, subnet, gateway: numToIp(gatewayOf(subnet)), suffix }, saved };
  }

  /**
   * Set the host up for the daemon: the bridge, the daemon's chains and jumps, and the
   * DNAT rules of the containers still running (`running`), all in one rules transaction.
   */
  static async open(opts: NetworkOptions, running: Array<{ id: string; name: string; ip: string; ports: PublishedPort[] }> = [], ownIds: string[] = []): Promise<BridgeNetwork> {
    let net: BridgeNetwork | undefined;
    // Checked and claimed under the host-wide lock: of two daemons that want one bridge, one
    // wins. A subnet not given nor recorded is chosen under it too, from the host's routes
    // read there, and its bridge made before the lock goes: two daemons starting at once
    // never take one subnet (as user-defined networks' subnets are chosen, user-networks.ts).
    await withHostLock(async () => {
      const { config, saved } = await BridgeNetwork.read(opts);
      const me = new BridgeNetwork(config, opts);
      net = me;
      for (const r of running) {
        for (const problem of await me.reservations.readopt(r.id, r.name, r.ports)) me.log(`${r.id}: ${problem}; its DNAT rule stays`);
        me.active.set(r.id, { ip: r.ip, ports: r.ports });
      }
      await checkClaims({ root: opts.root, bridge: config.bridge, suffix: config.suffix, recorded: saved, ownVeths: new Set(ownIds.map(vethName)), log: me.log });
      me.users = new NetworkSet({
        root: opts.root,
        takenSubnets: async () => [config.subnet, ...(await hostSubnets())],
        pickSubnet,
        routesBesides: (bridge) => hostSubnets(bridge),
        makeBridge: (name, cidr) => me.makeBridge(name, cidr),
        dropBridge: (name) => withHostLock(async () => (ownsBridge(name, opts.root) ? deleteLink(name) : undefined)),
        rulesChanged: () => me.reapply(),
        dns: me.dns,
        emit: me.emit,
        log: me.log,
      });
      await ensureBridge(config.bridge, `${config.gateway}/${config.subnet.prefix}`);
      await claimBridge(config.bridge, opts.root);
      await me.executor.apply(ownChains(config.suffix), me.allRules(), jumps(config));
    }).catch((e) => {
      net?.reservations.releaseAll();
      throw e;
    });
    const opened = net!;
    await opened.users.open();
    await opened.dropOrphanBridges();
    if (opened.users.all().length > 0) await opened.reapply();
    const { config } = opened;
    await writeFileAtomic(path.join(opts.root, 'network.json'), JSON.stringify({ bridge: config.bridge, subnet: formatSubnet(config.subnet), suffix: config.suffix }, null, 2) + '\n');
    return opened;
  }

  /**
   * At start: bridges this root claims that no record names (a crash between making a
   * network's bridge and writing its record, or between removing the record and the
   * bridge) are removed when nothing is plugged into them. Only this root's claims are
   * looked at: another daemon's bridges are never touched.
   */
  private async dropOrphanBridges(): Promise<void> {
    const known = new Set([this.config.bridge, ...this.users.recordedBridges, ...this.users.all().map((n) => n.rec.bridge)]);
    await withHostLock(async () => {
      for (const name of claimedBy(this.root)) {
        if (known.has(name)) continue;
        const ports = await linksOn(name);
        if (ports.length > 0) this.log(`bridge ${name} is claimed by this root but no network names it; left alone: ${ports.join(', ')} plugged in`);
        else if (ownsBridge(name, this.root)) {
          await deleteLink(name);
          this.log(`bridge ${name} was left by a crash (no network names it): removed`);
        }
      }
    });
  }

  /** The rules a daemon with these options installs at start (`berth daemon --dry-run`). */
  static async plan(opts: NetworkOptions): Promise<string[]> {
    const config = await BridgeNetwork.configure(opts);
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

  /** A run ended (or failed to start): its ports, rules and veths go. */
  async deactivate(id: string, cn?: ContainerNetwork): Promise<void> {
    this.reservations.release(id);
    if (this.active.delete(id)) await this.sync().catch((e) => this.log(`${id}: removing its port rules: ${(e as Error).message}`));
    await deleteLink(vethName(id));
    await this.unplug(id, cn);
    // A run that was plugged in (not a start that failed before) leaves each of its networks.
    if (this.plugged.delete(id)) {
      if (cn?.Endpoint) this.emit(networkEvent('disconnect', this.bridgeId, 'bridge', id));
      for (const ep of Object.values(cn?.Networks ?? {})) this.emit(networkEvent('disconnect', ep.NetworkID, ep.NetworkName, id));
    }
  }

  /**
   * A running container adopted at start: each of its veths that is gone (deleted by hand,
   * by another tool) is made again, at the same address. Returns what it fixed.
   */
  async repair(id: string, pid: number, cn: ContainerNetwork): Promise<string[]> {
    this.plugged.add(id);
    const fixed: string[] = [];
    const plugs: Array<{ hostIf: string; bridge: string; ep: Endpoint; internal: boolean }> = [];
    if (cn.Endpoint) plugs.push({ hostIf: vethName(id), bridge: this.config.bridge, ep: cn.Endpoint, internal: false });
    for (const ep of Object.values(cn.Networks ?? {})) {
      const n = this.networkOf(ep);
      plugs.push({ hostIf: userVethName(id, n.rec.Id), bridge: n.rec.bridge, ep, internal: n.rec.Internal });
    }
    for (const p of plugs) {
      if (linkExists(p.hostIf)) continue;
      const route = !p.internal && !(await hasDefaultRoute(pid));
      await attach({ hostIf: p.hostIf, bridge: p.bridge, pid, address: p.ep.IPAddress, prefix: p.ep.IPPrefixLen, gateway: p.ep.Gateway, mac: p.ep.MacAddress, ifname: await nextIfName(pid), route });
      fixed.push(`${p.hostIf} (${p.ep.IPAddress})`);
    }
    if (cn.Networks && Object.keys(cn.Networks).length) await this.pointDns(pid, cn);
    return fixed;
  }

  /**
   * Remove the veths a crash left on our bridge: only those of this daemon's own
   * containers (`known`) that are not running. Anything else on the bridge is left alone.
   */
  async pruneLinks(running: Set<string>, known: string[]): Promise<void> {
    const stopped = known.filter((id) => !running.has(id));
    const stale = new Set(stopped.map(vethName));
    const keep = new Set([...running].map(vethName));
    for (const l of await linksOn(this.config.bridge)) {
      if (stale.has(l)) await deleteLink(l);
      else if (!keep.has(l)) this.log(`${l} on ${this.config.bridge} is not one of this daemon's containers: left alone`);
    }
    for (const n of this.users.all()) {
      const mine = new Set(stopped.map((id) => userVethName(id, n.rec.Id)));
      for (const l of await linksOn(n.rec.bridge)) if (mine.has(l)) await deleteLink(l);
    }
  }

  /** The rules a container with these ports would get (`berth run --dry-run`). */
  planFor(ip: string, ports: PublishedPort[]): string[] {
    return portRules(this.config, ip, ports).map((r) => ruleLine(r));
  }

  /**
   * What a create with this network mode would get, without taking anything (`run
   * --dry-run`): the mode, and the address on the default bridge or on the named
   * user-defined network (the --ip asked for, else the next free one).
   */
  peekEndpoint(modeName: string | undefined, endpoints: Record<string, EndpointSettings> | undefined): { mode: NetworkMode; ip?: string } {
    const m = modeName || 'default';
    if (PREDEFINED.includes(m) || m.startsWith('container:')) {
      const mode = networkMode(m);
      return mode === 'bridge' ? { mode, ip: numToIp(this.ipam.peek()) } : { mode };
    }
    const n = this.users.find(m);
    const want = (endpoints?.[m] ?? endpoints?.[n.rec.Name] ?? endpoints?.[n.rec.Id])?.IPAMConfig?.IPv4Address;
    return { mode: 'bridge', ip: want || numToIp(n.ipam.peek()) };
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
    await this.users.closeAll(!anyRunning);
    this.dns.closeAll();
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

  // ---- containers on user-defined networks ------------------------------------------------

  /**
   * Who is where, for the embedded DNS and network inspect: the engine's records, read when
   * asked; `version` changes whenever they may have.
   */
  setDirectory(fn: () => DirectoryEntry[], version: () => unknown): void {
    this.directory = fn;
    this.directoryVersion = version;
  }

  /** The containers on a network (by id), running or not, with their endpoints. */
  membersOf(netId: string): Array<{ id: string; name: string; running: boolean; endpoint: UserEndpoint }> {
    return this.directory()
      .filter((c) => c.network?.Networks?.[netId])
      .map((c) => ({ id: c.id, name: c.name, running: c.running, endpoint: c.network!.Networks![netId] }));
  }

  private dnsMembers(): DnsMember[] {
    return this.directory()
      .filter((c) => c.network?.Networks)
      .map((c) => ({ id: c.id, name: c.name, running: c.running, endpoints: Object.values(c.network!.Networks!).map((e) => ({ net: e.NetworkID, ip: e.IPAddress, aliases: e.Aliases, links: parseLinks(e.Links) })), upstreams: c.dns?.filter((ip) => isIPv4(ip)) }));
  }

  /**
   * A create's network: the mode and, on a user-defined network (`networkMode` names one),
   * its endpoint with the aliases and address EndpointsConfig asks for. Addresses are taken.
   */
  endpointsFor(modeName: string | undefined, endpoints: Record<string, EndpointSettings> | undefined, id: string, name: string): ContainerNetwork {
    const m = modeName || 'default';
    if (PREDEFINED.includes(m) || m.startsWith('container:')) {
      const mode = networkMode(m);
      const cfg = endpoints?.[m === 'default' ? 'bridge' : m] ?? endpoints?.bridge;
      if (cfg?.Aliases?.length && mode === 'bridge') {
        throw new InvalidArgumentError('network-scoped aliases are only supported for user-defined networks', { hint: 'create a network (berth network create NAME) and run with --network NAME' });
      }
      if (cfg?.IPAMConfig?.IPv4Address) throw new InvalidArgumentError('user specified IP address is supported on user defined networks only', { hint: 'create a network with --subnet and run with --network NAME --ip ADDRESS' });
      const ep = mode === 'bridge' ? this.allocate() : undefined;
      return { Mode: mode, ...(ep ? { Endpoint: ep } : {}), Ports: [] };
    }
    const n = this.users.find(m);
    const extra = Object.keys(endpoints ?? {}).filter((k) => k !== m && k !== n.rec.Name && k !== n.rec.Id);
    if (extra.length > 0) {
      throw new InvalidArgumentError(`a container is created on one network; ${extra.join(', ')} must be connected after`, { hint: 'berth network connect NETWORK CONTAINER (docker and compose do this for you)' });
    }
    const ep = this.userEndpoint(n, endpoints?.[m] ?? endpoints?.[n.rec.Name] ?? endpoints?.[n.rec.Id], id, name);
    return { Mode: 'bridge', Networks: { [n.rec.Id]: ep }, Ports: [] };
  }

  private userEndpoint(n: UserNet, cfg: EndpointSettings | undefined, id: string, name: string): UserEndpoint {
    const want = cfg?.IPAMConfig?.IPv4Address;
    let ip: number;
    if (want) {
      ip = ipToNum(want);
      if (!contains(n.subnet, ip) || !n.ipam.usable(ip)) {
        throw new InvalidArgumentError(`address ${want} is not a usable address of network ${n.rec.Name} (${formatSubnet(n.subnet)})`, { hint: 'give an address inside the subnet, other than its gateway' });
      }
      if (!n.ipam.take(ip)) throw new ConflictError(`address ${want} is already in use on network ${n.rec.Name}`, { hint: 'choose another --ip, or leave it out' });
    } else ip = n.ipam.allocate();
    const aliases = (cfg?.Aliases ?? []).filter((a) => typeof a === 'string' && a !== '' && a !== name);
    return {
      NetworkID: n.rec.Id,
      NetworkName: n.rec.Name,
      IPAddress: numToIp(ip),
      IPPrefixLen: n.subnet.prefix,
      Gateway: n.rec.IPAM.Config[0].Gateway,
      MacAddress: macOf(ip),
      Aliases: [...aliases, id.slice(0, 12)].filter((a, i, all) => all.indexOf(a) === i),
      IPAMConfig: want ? { IPv4Address: want } : null,
      Links: cfg?.Links?.length ? parseLinks(cfg.Links).map((l) => `${l.target}:${l.alias}`) : null,
    };
  }

  /** At start: the addresses in a record are taken again. */
  adoptAll(cn: ContainerNetwork | undefined): void {
    if (cn?.Endpoint) this.adopt(cn.Endpoint);
    for (const ep of Object.values(cn?.Networks ?? {})) {
      const n = this.users.tryFind(ep.NetworkID);
      if (n && !n.ipam.take(ipToNum(ep.IPAddress))) this.log(`address ${ep.IPAddress} on ${n.rec.Name} is taken twice`);
    }
  }

  freeAll(cn: ContainerNetwork | undefined): void {
    this.free(cn?.Endpoint);
    for (const ep of Object.values(cn?.Networks ?? {})) this.users.tryFind(ep.NetworkID)?.ipam.release(ipToNum(ep.IPAddress));
  }

  /** Is this container networked by us (the default bridge or user-defined networks)? */
  bridged(cn: ContainerNetwork | undefined): boolean {
    return cn?.Mode === 'bridge' && (!!cn.Endpoint || Object.keys(cn.Networks ?? {}).length > 0);
  }

  /** The address its published ports go to: on the default bridge, else its first non-internal network. */
  primaryAddress(cn: ContainerNetwork | undefined): string | undefined {
    if (cn?.Endpoint) return cn.Endpoint.IPAddress;
    for (const ep of Object.values(cn?.Networks ?? {})) if (!this.users.tryFind(ep.NetworkID)?.rec.Internal) return ep.IPAddress;
    return undefined;
  }

  /** Plug a created container (init `pid`) into every network it is on: eth0, eth1, … in order. */
  async plug(id: string, pid: number, cn: ContainerNetwork, name?: string): Promise<void> {
    let i = 0;
    let routed = false;
    if (cn.Endpoint) {
      await this.connect(id, pid, cn.Endpoint);
      i++;
      routed = true;
    }
    for (const ep of Object.values(cn.Networks ?? {})) {
      const n = this.networkOf(ep, name);
      const route: boolean = !routed && !n.rec.Internal;
      await attach({ hostIf: userVethName(id, n.rec.Id), bridge: n.rec.bridge, pid, address: ep.IPAddress, prefix: ep.IPPrefixLen, gateway: ep.Gateway, mac: ep.MacAddress, ifname: `eth${i++}`, route });
      routed ||= route;
    }
    await this.pointDns(pid, cn);
    this.plugged.add(id);
    // Docker's events: a start connects the container to each of its networks.
    if (cn.Endpoint) this.emit(networkEvent('connect', this.bridgeId, 'bridge', id));
    for (const ep of Object.values(cn.Networks ?? {})) this.emit(networkEvent('connect', ep.NetworkID, ep.NetworkName, id));
  }

  /**
   * The network of a recorded endpoint, by the id it was connected with (Docker looks a
   * user-defined network up by its recorded NetworkID at start). One removed while the
   * container was stopped is NOT_FOUND, also when a network of the same name was created
   * since: that one is another network, and the container joins it by a connect.
   */
  private networkOf(ep: UserEndpoint, container = 'CONTAINER'): UserNet {
    const n = this.users.tryFind(ep.NetworkID);
    if (n) return n;
    const again = this.users.all().find((x) => x.rec.Name === ep.NetworkName);
    const fix = `berth network disconnect --force ${ep.NetworkName} ${container}`;
    if (again) {
      throw new NotFoundError(`network ${ep.NetworkName} (id ${ep.NetworkID.slice(0, 12)}) not found: it was removed, and the network now named ${ep.NetworkName} is another one (id ${again.rec.Id.slice(0, 12)})`, {
        hint: `${fix}, then berth network connect ${ep.NetworkName} ${container}`,
      });
    }
    throw new NotFoundError(`network ${ep.NetworkName} not found`, {
      hint: `it was removed while the container was stopped: ${fix}, then connect it to another network`,
    });
  }

  /**
   * 127.0.0.11 inside goes to the DNS server on its first user-defined network. A container
   * on the default bridge alone has no redirect: at start none is made, and `left` (it has
   * just left its last user-defined network) takes the old one away.
   */
  private async pointDns(pid: number, cn: ContainerNetwork, left = false): Promise<void> {
    const first = Object.values(cn.Networks ?? {})[0];
    if (first || cn.Endpoint === undefined || left) await redirectDns(pid, first ? { gateway: first.Gateway, ip: first.IPAddress } : undefined);
  }

  /** A run ended: every veth of it goes (the default bridge's by deactivate). */
  async unplug(id: string, cn: ContainerNetwork | undefined): Promise<void> {
    for (const ep of Object.values(cn?.Networks ?? {})) await deleteLink(userVethName(id, ep.NetworkID));
  }

  /**
   * `network connect`: a new endpoint for the record, and when the container runs
   * (`pid`), a veth hot-plugged into its namespace. Returns the endpoint to record.
   */
  async connectNetwork(id: string, name: string, pid: number | undefined, cn: ContainerNetwork, netRef: string, cfg: EndpointSettings | undefined): Promise<UserEndpoint> {
    const n = this.users.find(netRef);
    if (cn.Networks?.[n.rec.Id]) throw new ConflictError(`container ${name} is already connected to network ${n.rec.Name}`, { hint: 'disconnect it first to change its settings' });
    if (Object.values(cn.Networks ?? {}).some((e) => e.NetworkName === n.rec.Name)) {
      throw new ConflictError(`container ${name} is still connected to the removed network ${n.rec.Name}, which this one of the same name replaced`, {
        hint: `berth network disconnect --force ${n.rec.Name} ${name} first`,
      });
    }
    const ep = this.userEndpoint(n, cfg, id, name);
    if (pid) {
      try {
        const route: boolean = !n.rec.Internal && !(await hasDefaultRoute(pid));
        await attach({ hostIf: userVethName(id, n.rec.Id), bridge: n.rec.bridge, pid, address: ep.IPAddress, prefix: ep.IPPrefixLen, gateway: ep.Gateway, mac: ep.MacAddress, ifname: await nextIfName(pid), route });
        await this.pointDns(pid, { ...cn, Networks: { ...(cn.Networks ?? {}), [n.rec.Id]: ep } });
      } catch (e) {
        n.ipam.release(ipToNum(ep.IPAddress));
        throw e;
      }
      this.emit(networkEvent('connect', n.rec.Id, n.rec.Name, id));
    }
    return ep;
  }

  /** `network disconnect`: the endpoint's veth goes (if it runs) and its address is freed. Returns the network's id. */
  async disconnectNetwork(id: string, name: string, pid: number | undefined, cn: ContainerNetwork, netRef: string, force: boolean): Promise<string> {
    const found = this.users.tryFind(netRef);
    const n = found && cn.Networks?.[found.rec.Id] ? found : undefined;
    // A network removed meanwhile is found in the record by its id or its name (also when
    // a network of that name was created again since: the record names the old one).
    const netId = n?.rec.Id ?? Object.entries(cn.Networks ?? {}).find(([k, e]) => k === netRef || k.startsWith(netRef) || e.NetworkName === netRef)?.[0];
    if (!netId || !cn.Networks?.[netId]) {
      if (force && !found) return netRef;
      throw new NotFoundError(`container ${name} is not connected to network ${netRef}`, { hint: 'berth inspect shows its networks' });
    }
    const ep = cn.Networks[netId];
    if (pid) {
      await deleteLink(userVethName(id, netId));
      const rest = { ...cn.Networks };
      delete rest[netId];
      await this.pointDns(pid, { ...cn, Networks: rest }, true).catch((e) => this.log(`${id}: dns redirect: ${(e as Error).message}`));
      this.emit(networkEvent('disconnect', netId, ep.NetworkName, id));
    }
    n?.ipam.release(ipToNum(ep.IPAddress));
    return netId;
  }

  /** /etc/resolv.conf for a container: 127.0.0.11 on user-defined networks (search and options kept). */
  resolvConfFor(cn: ContainerNetwork): string {
    if (!cn.Networks || Object.keys(cn.Networks).length === 0) return this.resolv;
    const keep = containerResolvConf(undefined, this.resolvFiles).text.split('\n').filter((l) => /^\s*(search|options|domain)\s/.test(l));
    return ['nameserver 127.0.0.11', ...keep].join('\n') + '\n';
  }

  /** Every rule of the daemon's chains: its claim, isolation, the default bridge's, each network's, the ports. */
  private allRules(): Rule[] {
    const specs: BridgeSpec[] = [
      { bridge: this.config.bridge, subnet: this.config.subnet, internal: false },
      ...(this.users?.all() ?? []).map((n) => ({ bridge: n.rec.bridge, subnet: n.subnet, internal: n.rec.Internal })),
    ];
    const [claim, ...base] = this.rules;
    return [claim, ...isolationRules(this.config.suffix, specs), ...base, ...specs.slice(1).flatMap((n) => userNetworkRules(this.config.suffix, n)), ...this.portRulesAll()];
  }

  /** Rewrite all the daemon's chains (a network came or went). */
  private reapply(): Promise<void> {
    const p = this.queue.then(() => this.executor.apply(ownChains(this.config.suffix), this.allRules()));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /**
   * Make (or adopt) a user-defined network's bridge and claim it, as the daemon's own. A
   * function for the address is called under the lock (a new network's subnet is chosen there).
   */
  private makeBridge(name: string, gatewayCidr: string | (() => Promise<string>)): Promise<void> {
    return withHostLock(async () => {
      await checkClaims({ root: this.root, bridge: name, suffix: this.config.suffix, recorded: { suffix: this.config.suffix }, ownVeths: new Set(), log: this.log, bridgeOnly: true });
      await ensureBridge(name, typeof gatewayCidr === 'function' ? await gatewayCidr() : gatewayCidr);
      await claimBridge(name, this.root);
    });
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
