import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { writeFileAtomic } from '../../volumes/shared/atomic';
import { Ipam } from './ipam';
import { contains, formatSubnet, gatewayOf, ipToNum, numToIp, overlaps, parseSubnet, type Subnet } from './ipv4';

/**
 * User-defined networks (Docker's `docker network create`): each one a bridge of its own
 * with a subnet of its own, kept as `<root>/networks/<id>.json` (written atomically, so a
 * crash leaves a network whole or absent). The addresses in use are those in the
 * container records (as for the default bridge), so each network's Ipam is rebuilt from
 * them at start.
 */

export interface NetworkRecord {
  Id: string;
  Name: string;
  Created: string;
  Driver: 'bridge';
  Internal: boolean;
  Attachable: boolean;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  IPAM: { Driver: 'default'; Options: Record<string, string>; Config: Array<{ Subnet: string; Gateway: string; IPRange?: string }> };
  /** The host bridge (Options com.docker.network.bridge.name, else br-<12 hex of the id>). */
  bridge: string;
}

export interface UserNet {
  rec: NetworkRecord;
  subnet: Subnet;
  /** IPRange, if given: where automatic addresses come from. */
  range?: Subnet;
  ipam: Ipam;
}

export const PREDEFINED = ['bridge', 'host', 'none', 'default'];

/** The id of a predefined network (bridge, host, none): fixed per engine, as a user-defined network's is per network. */
export function predefinedNetworkId(engineId: string, name: string): string {
  return createHash('sha256').update(`${engineId}/${name}`).digest('hex');
}

/** Docker's network events (`docker events`): create, connect, disconnect, destroy. */
export interface NetworkEvent {
  Type: 'network';
  Action: 'create' | 'connect' | 'disconnect' | 'destroy';
  Actor: { ID: string; Attributes: Record<string, string> };
}

export function networkEvent(action: NetworkEvent['Action'], id: string, name: string, container?: string): NetworkEvent {
  return { Type: 'network', Action: action, Actor: { ID: id, Attributes: { ...(container ? { container } : {}), name, type: 'bridge' } } };
}
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const BRIDGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const KNOWN_OPTIONS = new Set(['com.docker.network.bridge.name', 'com.docker.network.bridge.enable_ip_masquerade', 'com.docker.network.bridge.enable_icc', 'com.docker.network.driver.mtu']);

export interface CreateNetworkBody {
  Name?: unknown;
  CheckDuplicate?: unknown;
  Driver?: unknown;
  Internal?: unknown;
  Attachable?: unknown;
  Ingress?: unknown;
  EnableIPv6?: unknown;
  IPAM?: { Driver?: unknown; Config?: unknown; Options?: unknown } | null;
  Options?: unknown;
  Labels?: unknown;
  Scope?: unknown;
  ConfigOnly?: unknown;
  ConfigFrom?: unknown;
}

function strMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError(`${field} must be an object of strings`, { hint: `e.g. {"key": "value"}` });
  }
  return { ...(v as Record<string, string>) };
}

/** Check a create body: everything Docker 1.41 takes is honoured or refused here, by name. */
export function parseCreate(body: CreateNetworkBody): Omit<NetworkRecord, 'Id' | 'Created' | 'bridge' | 'IPAM'> & { bridge?: string; ipam: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> } {
  if (!body || typeof body !== 'object') throw new InvalidArgumentError('a network create body is a JSON object', { hint: 'e.g. {"Name": "mynet"}' });
  const name = body.Name;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidArgumentError(`invalid network name ${JSON.stringify(name)}`, { hint: 'letters, digits, _ . or -, starting with a letter or digit' });
  }
  const driver = body.Driver ?? 'bridge';
  if (driver !== 'bridge' && driver !== '') {
    throw new InvalidArgumentError(`network driver ${JSON.stringify(driver)} is not supported`, { hint: 'berth has the bridge driver: leave --driver out or say --driver bridge' });
  }
  if (body.EnableIPv6 === true) throw new InvalidArgumentError('EnableIPv6 is not supported yet', { hint: 'berth networks are IPv4 only for now: leave --ipv6 out' });
  if (body.Ingress === true) throw new InvalidArgumentError('Ingress networks are a swarm feature', { hint: 'leave --ingress out' });
  if (body.ConfigOnly === true || (body.ConfigFrom && typeof body.ConfigFrom === 'object' && (body.ConfigFrom as { Network?: string }).Network)) {
    throw new InvalidArgumentError('config-only networks (ConfigOnly, ConfigFrom) are not supported', { hint: 'create the network with its settings directly' });
  }
  if (body.Scope !== undefined && body.Scope !== '' && body.Scope !== 'local') {
    throw new InvalidArgumentError(`network scope ${JSON.stringify(body.Scope)} is not supported`, { hint: 'berth networks are local: leave --scope out' });
  }
  const options = strMap(body.Options, 'Options');
  for (const [k, v] of Object.entries(options)) {
    if (!KNOWN_OPTIONS.has(k)) throw new InvalidArgumentError(`network option ${k} is not supported`, { hint: `berth takes ${[...KNOWN_OPTIONS].join(', ')}` });
    if ((k.endsWith('enable_ip_masquerade') || k.endsWith('enable_icc')) && v !== 'true') {
      throw new InvalidArgumentError(`network option ${k}=${v} is not supported`, { hint: `berth always has ${k}=true; use --internal for a network without outbound traffic` });
    }
    if (k.endsWith('driver.mtu') && v !== '1500' && v !== '0' && v !== '') throw new InvalidArgumentError(`network option ${k}=${v} is not supported`, { hint: 'berth bridges use MTU 1500' });
  }
  const bridge = options['com.docker.network.bridge.name'];
  if (bridge !== undefined && !BRIDGE_NAME.test(bridge)) {
    throw new InvalidArgumentError(`invalid bridge name ${JSON.stringify(bridge)}`, { hint: 'up to 15 letters, digits, _ . or -' });
  }
  const ipam = body.IPAM ?? {};
  if (ipam.Driver !== undefined && ipam.Driver !== 'default' && ipam.Driver !== '') {
    throw new InvalidArgumentError(`IPAM driver ${JSON.stringify(ipam.Driver)} is not supported`, { hint: "berth has the 'default' IPAM driver" });
  }
  if (Object.keys(strMap(ipam.Options, 'IPAM.Options')).length > 0) throw new InvalidArgumentError('IPAM options are not supported', { hint: 'leave --ipam-opt out' });
  const configs = (ipam.Config ?? []) as Array<Record<string, unknown>>;
  if (!Array.isArray(configs)) throw new InvalidArgumentError('IPAM.Config must be a list', { hint: 'e.g. [{"Subnet": "10.90.0.0/24"}]' });
  if (configs.length > 1) throw new InvalidArgumentError('one IPAM config per network is supported', { hint: 'give one --subnet' });
  for (const c of configs) {
    for (const k of Object.keys(c)) {
      if (!['Subnet', 'Gateway', 'IPRange', 'AuxiliaryAddresses'].includes(k)) throw new InvalidArgumentError(`IPAM.Config field ${k} is not supported`, { hint: 'berth takes Subnet, Gateway and IPRange' });
    }
    if (c.AuxiliaryAddresses && Object.keys(c.AuxiliaryAddresses as object).length > 0) {
      throw new InvalidArgumentError('IPAM AuxiliaryAddresses are not supported', { hint: 'leave --aux-address out' });
    }
  }
  return {
    Name: name,
    Driver: 'bridge',
    Internal: body.Internal === true,
    Attachable: body.Attachable === true,
    Labels: strMap(body.Labels, 'Labels'),
    Options: options,
    bridge,
    ipam: configs.map((c) => ({ Subnet: (c.Subnet as string) || undefined, Gateway: (c.Gateway as string) || undefined, IPRange: (c.IPRange as string) || undefined })),
  };
}

/** Make a UserNet (its allocator) from a record. */
export function userNet(rec: NetworkRecord): UserNet {
  const c = rec.IPAM.Config[0];
  const subnet = parseSubnet(c.Subnet);
  const range = c.IPRange ? parseSubnet(c.IPRange) : undefined;
  const ipam = new Ipam(subnet, range, ipToNum(c.Gateway));
  return { rec, subnet, range, ipam };
}

/** Check and settle the IPAM of a new network: subnet (given or `pick`ed), gateway, range. */
export function settleIpam(want: { Subnet?: string; Gateway?: string; IPRange?: string } | undefined, taken: Subnet[], pick: () => Subnet): { Subnet: string; Gateway: string; IPRange?: string } {
  if (!want?.Subnet && (want?.Gateway || want?.IPRange)) {
    throw new InvalidArgumentError('a gateway or IP range needs a subnet', { hint: 'give --subnet as well' });
  }
  const subnet = want?.Subnet ? parseSubnet(want.Subnet) : pick();
  if (want?.Subnet) {
    const clash = taken.find((t) => overlaps(t, subnet));
    if (clash) {
      throw new ConflictError(`subnet ${want.Subnet} overlaps ${formatSubnet(clash)}, which is in use`, { hint: 'choose a subnet no other network or host route uses, or leave --subnet out' });
    }
  }
  const gw = want?.Gateway ? ipToNum(want.Gateway) : gatewayOf(subnet);
  if (!contains(subnet, gw) || gw === subnet.base) {
    throw new InvalidArgumentError(`gateway ${numToIp(gw)} is not a host address of ${formatSubnet(subnet)}`, { hint: 'give a gateway inside the subnet' });
  }
  if (want?.IPRange) {
    const r = parseSubnet(want.IPRange);
    if (!contains(subnet, r.base) || r.prefix < subnet.prefix) {
      throw new InvalidArgumentError(`IP range ${want.IPRange} is not inside ${formatSubnet(subnet)}`, { hint: 'give an --ip-range inside the subnet' });
    }
  }
  return { Subnet: formatSubnet(subnet), Gateway: numToIp(gw), ...(want?.IPRange ? { IPRange: want.IPRange } : {}) };
}

/** The records on disk, in `<root>/networks`. */
export class NetworkFiles {
  constructor(private readonly dir: string) {}

  async load(log: (m: string) => void): Promise<NetworkRecord[]> {
    await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const out: NetworkRecord[] = [];
    for (const f of await fs.promises.readdir(this.dir)) {
      if (!f.endsWith('.json')) {
        await fs.promises.rm(path.join(this.dir, f), { force: true }); // an interrupted write
        continue;
      }
      try {
        out.push(JSON.parse(await fs.promises.readFile(path.join(this.dir, f), 'utf8')) as NetworkRecord);
      } catch (e) {
        log(`cannot read network record ${f}: ${(e as Error).message}; left alone`);
      }
    }
    return out.sort((a, b) => a.Created.localeCompare(b.Created));
  }

  save(rec: NetworkRecord): Promise<void> {
    return writeFileAtomic(path.join(this.dir, `${rec.Id}.json`), JSON.stringify(rec, null, 2) + '\n');
  }

  async remove(id: string): Promise<void> {
    await fs.promises.rm(path.join(this.dir, `${id}.json`), { force: true });
  }
}

export function newNetworkId(): string {
  return randomBytes(32).toString('hex');
}

/** Find a network by full id, name, or id prefix (Docker's order); NOT_FOUND otherwise. */
export function findNetwork(nets: Iterable<UserNet>, ref: string): UserNet {
  const all = [...nets];
  const hit = all.find((n) => n.rec.Id === ref) ?? all.find((n) => n.rec.Name === ref);
  if (hit) return hit;
  const byPrefix = ref.length > 0 ? all.filter((n) => n.rec.Id.startsWith(ref)) : [];
  if (byPrefix.length === 1) return byPrefix[0];
  if (byPrefix.length > 1) throw new InvalidArgumentError(`network ${ref} is ambiguous (${byPrefix.length} matches)`, { hint: 'give more of its id, or its name' });
  throw new NotFoundError(`network ${ref} not found`, { hint: 'berth network ls lists the networks' });
}

export interface NetworkSetDeps {
  root: string;
  /** Subnets already in use (host routes, the default bridge, other networks). */
  takenSubnets: () => Promise<Subnet[]>;
  /** The subnets the host routes through any interface but `bridge` (and not loopback's). */
  routesBesides: (bridge: string) => Promise<Subnet[]>;
  /** A free subnet for a new network: one that overlaps none of `taken`. */
  pickSubnet: (taken: Subnet[]) => Subnet;
  /** Make and claim a bridge (with its gateway), under the host lock. */
  makeBridge: (name: string, gatewayCidr: string | (() => Promise<string>)) => Promise<void>;
  /** Remove a bridge if this root still claims it. */
  dropBridge: (name: string) => Promise<void>;
  /** After a network is made or removed: rewrite the daemon's rules. */
  rulesChanged: () => Promise<void>;
  dns: { listen(gateway: string): Promise<void>; close(gateway: string): void };
  /** A network was created or destroyed. */
  emit: (e: NetworkEvent) => void;
  log: (m: string) => void;
}

/** The daemon's user-defined networks: records, bridges, allocators, DNS listeners. */
export class NetworkSet {
  private readonly nets = new Map<string, UserNet>();
  private readonly files: NetworkFiles;
  /** The bridges the records on disk name (opened or not), at open. */
  recordedBridges: string[] = [];

  constructor(private readonly deps: NetworkSetDeps) {
    this.files = new NetworkFiles(path.join(deps.root, 'networks'));
  }

  /** At start: every recorded network's bridge up and claimed, its DNS served. */
  async open(): Promise<void> {
    const recs = await this.files.load(this.deps.log);
    this.recordedBridges = recs.map((r) => r.bridge);
    for (const rec of recs) {
      try {
        const n = userNet(rec);
        await this.deps.makeBridge(rec.bridge, async () => {
          // Its subnet may have been taken while its bridge was down (this daemon stopped).
          const clash = (await this.deps.routesBesides(rec.bridge)).find((r) => overlaps(r, n.subnet));
          if (clash) throw new ConflictError(`subnet ${formatSubnet(n.subnet)} overlaps ${formatSubnet(clash)}, which another interface routes now`, { hint: 'remove that network or interface, or remove this network and create it again' });
          return `${rec.IPAM.Config[0].Gateway}/${n.subnet.prefix}`;
        });
        this.nets.set(rec.Id, n);
        await this.deps.dns.listen(rec.IPAM.Config[0].Gateway).catch((e) => this.deps.log(`network ${rec.Name}: embedded DNS: ${(e as Error).message}`));
      } catch (e) {
        this.deps.log(`network ${rec.Name}: ${(e as Error).message}; its containers cannot start until this is fixed`);
      }
    }
  }

  all(): UserNet[] {
    return [...this.nets.values()];
  }

  find(ref: string): UserNet {
    return findNetwork(this.nets.values(), ref);
  }

  tryFind(ref: string): UserNet | undefined {
    try {
      return this.find(ref);
    } catch {
      return undefined;
    }
  }

  byGateway(ip: string): UserNet | undefined {
    return this.all().find((n) => n.rec.IPAM.Config[0].Gateway === ip);
  }

  async create(body: CreateNetworkBody): Promise<NetworkRecord> {
    const want = parseCreate(body);
    if (PREDEFINED.includes(want.Name) || this.all().some((n) => n.rec.Name === want.Name)) {
      throw new ConflictError(`network with name ${want.Name} already exists`, { hint: 'choose another name, or use the existing network' });
    }
    const id = newNetworkId();
    const bridge = want.bridge ?? `br-${id.slice(0, 12)}`;
    if (this.all().some((n) => n.rec.bridge === bridge)) throw new ConflictError(`bridge ${bridge} is used by another network`, { hint: 'choose another com.docker.network.bridge.name' });
    // The subnet is chosen and its bridge made under the host-wide lock, with the host's
    // routes read inside it: two daemons creating networks at once never take one subnet
    // (the second would find the first's gateway address, and its DNS port, taken).
    let rec!: NetworkRecord;
    await this.deps.makeBridge(bridge, async () => {
      const taken = [...(await this.deps.takenSubnets()), ...this.all().map((n) => n.subnet)];
      const ipam = settleIpam(want.ipam[0], taken, () => this.deps.pickSubnet(taken));
      rec = {
        Id: id,
        Name: want.Name,
        Created: new Date().toISOString(),
        Driver: 'bridge',
        Internal: want.Internal,
        Attachable: want.Attachable,
        Labels: want.Labels,
        Options: want.Options,
        IPAM: { Driver: 'default', Options: {}, Config: [ipam] },
        bridge,
      };
      return `${ipam.Gateway}/${parseSubnet(ipam.Subnet).prefix}`;
    });
    const n = userNet(rec);
    const ipam = rec.IPAM.Config[0];
    try {
      await this.files.save(rec);
      this.nets.set(id, n);
      await this.deps.rulesChanged();
      await this.deps.dns.listen(ipam.Gateway);
    } catch (e) {
      this.nets.delete(id);
      await this.files.remove(id);
      await this.deps.dropBridge(bridge);
      await this.deps.rulesChanged().catch(() => undefined);
      throw e;
    }
    this.deps.emit(networkEvent('create', rec.Id, rec.Name));
    return rec;
  }

  /** Remove a network nobody is on (the caller checked). */
  async remove(n: UserNet): Promise<void> {
    await this.files.remove(n.rec.Id); // first: a crash after this leaves a bridge the next start drops
    this.nets.delete(n.rec.Id);
    this.deps.dns.close(n.rec.IPAM.Config[0].Gateway);
    await this.deps.rulesChanged();
    await this.deps.dropBridge(n.rec.bridge);
    this.deps.emit(networkEvent('destroy', n.rec.Id, n.rec.Name));
  }

  /** At daemon stop with nothing running: the bridges go (the records stay). */
  async closeAll(dropBridges: boolean): Promise<void> {
    for (const n of this.all()) {
      this.deps.dns.close(n.rec.IPAM.Config[0].Gateway);
      if (dropBridges) await this.deps.dropBridge(n.rec.bridge);
    }
  }
}
