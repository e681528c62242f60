import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { BridgeNetwork, EndpointSettings } from './network';
import { predefinedNetworkId, type CreateNetworkBody, type UserNet } from './user-networks';

/**
 * The networks service behind Docker's /networks routes: the three predefined networks
 * (bridge, host, none) and the user-defined ones, in Docker 1.41's shapes. Connecting and
 * disconnecting containers is the engine's (it holds the container records and locks),
 * handed in as `attach`.
 */

export interface NetworkAttach {
  connect(container: string, network: string, cfg: EndpointSettings | undefined): Promise<void>;
  disconnect(container: string, network: string, force: boolean): Promise<void>;
  /** Containers on the default bridge / host / none, by predefined network name. */
  predefinedMembers(name: 'bridge' | 'host' | 'none'): Array<{ id: string; name: string; ip?: string; prefix?: number; mac?: string }>;
}

type Filters = Record<string, string[]>;

const LIST_FILTERS = ['name', 'id', 'label', 'driver', 'type', 'dangling', 'scope'];

function labelMatch(labels: Record<string, string>, want: string): boolean {
  const i = want.indexOf('=');
  return i < 0 ? want in labels : labels[want.slice(0, i)] === want.slice(i + 1);
}

export class Networks {
  constructor(
    private readonly net: BridgeNetwork | undefined,
    private readonly engineId: string,
    private readonly attach: NetworkAttach,
  ) {}

  private predefinedId(name: string): string {
    return predefinedNetworkId(this.engineId, name);
  }

  private predefinedNames(): Array<'bridge' | 'host' | 'none'> {
    return this.net ? ['bridge', 'host', 'none'] : ['host', 'none'];
  }

  private predefinedView(name: 'bridge' | 'host' | 'none'): Record<string, unknown> {
    const b = name === 'bridge' ? this.net?.info() : undefined;
    const members: Record<string, unknown> = {};
    for (const m of this.attach.predefinedMembers(name)) {
      members[m.id] = { Name: m.name, EndpointID: m.ip ? m.id : '', MacAddress: m.mac ?? '', IPv4Address: m.ip ? `${m.ip}/${m.prefix}` : '', IPv6Address: '' };
    }
    return {
      Name: name,
      Id: this.predefinedId(name),
      Created: '0001-01-01T00:00:00Z',
      Scope: 'local',
      Driver: name === 'bridge' ? 'bridge' : name === 'host' ? 'host' : 'null',
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: b ? [{ Subnet: b.subnet, Gateway: b.gateway }] : [] },
      Internal: false,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: members,
      Options: b ? { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': b.bridge, 'com.docker.network.bridge.enable_ip_masquerade': 'true' } : {},
      Labels: {},
    };
  }

  private userView(n: UserNet, withContainers: boolean): Record<string, unknown> {
    const members: Record<string, unknown> = {};
    if (withContainers && this.net) {
      for (const m of this.net.membersOf(n.rec.Id).filter((x) => x.running)) {
        members[m.id] = { Name: m.name, EndpointID: m.id.slice(0, 32) + n.rec.Id.slice(0, 32), MacAddress: m.endpoint.MacAddress, IPv4Address: `${m.endpoint.IPAddress}/${m.endpoint.IPPrefixLen}`, IPv6Address: '' };
      }
    }
    return {
      Name: n.rec.Name,
      Id: n.rec.Id,
      Created: n.rec.Created,
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: false,
      IPAM: n.rec.IPAM,
      Internal: n.rec.Internal,
      Attachable: n.rec.Attachable,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: members,
      Options: { ...n.rec.Options, 'com.docker.network.bridge.name': n.rec.bridge },
      Labels: n.rec.Labels,
    };
  }

  /**
   * The network's active endpoints: its running containers. As in Docker, a stopped
   * container holds no endpoint, so it keeps no network from rm or prune (its start then
   * fails with NOT_FOUND naming the network).
   */
  private active(n: UserNet): Array<{ id: string; name: string }> {
    return this.net?.membersOf(n.rec.Id).filter((m) => m.running) ?? [];
  }

  private users(): UserNet[] {
    return this.net?.users.all() ?? [];
  }

  list(filters: Filters = {}): Array<Record<string, unknown>> {
    for (const k of Object.keys(filters)) {
      if (!LIST_FILTERS.includes(k)) throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: `network ls filters: ${LIST_FILTERS.join(', ')}` });
    }
    const rows: Array<{ view: Record<string, unknown>; custom: boolean; dangling: boolean }> = [
      ...this.predefinedNames().map((n) => ({ view: this.predefinedView(n), custom: false, dangling: false })),
      ...this.users().map((n) => ({ view: this.userView(n, true), custom: true, dangling: this.active(n).length === 0 })),
    ];
    return rows
      .filter(({ view, custom, dangling }) => {
        const any = (k: string, f: (v: string) => boolean) => !filters[k]?.length || filters[k].some(f);
        return (
          any('name', (v) => String(view.Name).includes(v)) &&
          any('id', (v) => String(view.Id).startsWith(v)) &&
          any('driver', (v) => view.Driver === v) &&
          any('scope', (v) => v === 'local') &&
          any('label', (v) => labelMatch(view.Labels as Record<string, string>, v)) &&
          any('type', (v) => {
            if (v !== 'custom' && v !== 'builtin') throw new InvalidArgumentError(`invalid filter 'type=${v}'`, { hint: "type is 'custom' or 'builtin'" });
            return (v === 'custom') === custom;
          }) &&
          any('dangling', (v) => {
            if (!['true', 'false', '1', '0'].includes(v)) throw new InvalidArgumentError(`invalid filter 'dangling=${v}'`, { hint: "dangling is 'true' or 'false'" });
            return custom && (v === 'true' || v === '1') === dangling;
          })
        );
      })
      .map((r) => r.view);
  }

  inspect(ref: string): Record<string, unknown> {
    const pre = this.predefinedNames().find((n) => n === ref || (ref.length >= 3 && this.predefinedId(n).startsWith(ref)) || this.predefinedId(n) === ref);
    if (pre) return this.predefinedView(pre);
    if (!this.net) throw new NotFoundError(`network ${ref} not found`, { hint: 'berth network ls lists the networks' });
    return this.userView(this.net.users.find(ref), true);
  }

  async create(body: CreateNetworkBody): Promise<{ Id: string; Warning: string }> {
    if (!this.net) throw new NotFoundError('this daemon has no bridge network', { hint: 'start berthd with networking' });
    const rec = await this.net.users.create(body);
    return { Id: rec.Id, Warning: '' };
  }

  async remove(ref: string): Promise<void> {
    if (this.predefinedNames().includes(ref as 'bridge')) {
      throw new ConflictError(`${ref} is a pre-defined network and cannot be removed`, { hint: 'remove only networks you created' });
    }
    if (!this.net) throw new NotFoundError(`network ${ref} not found`, { hint: 'berth network ls lists the networks' });
    const n = this.net.users.find(ref);
    const members = this.active(n);
    if (members.length > 0) {
      throw new ConflictError(`error while removing network: network ${n.rec.Name} id ${n.rec.Id} has active endpoints`, {
        hint: `disconnect or remove its containers first: ${members.map((m) => m.name).join(', ')}`,
      });
    }
    await this.net.users.remove(n);
  }

  async prune(filters: Filters = {}): Promise<{ NetworksDeleted: string[] }> {
    for (const k of Object.keys(filters)) {
      if (k !== 'label' && k !== 'label!' && k !== 'until') throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'network prune filters: label, label!, until' });
    }
    const until = filters.until?.[0];
    const cutoff = until ? (/^\d+$/.test(until) ? Number(until) * 1000 : Date.now() - durationMs(until)) : Infinity;
    const deleted: string[] = [];
    for (const n of this.users()) {
      if (this.active(n).length > 0) continue;
      if (filters.label?.length && !filters.label.every((l) => labelMatch(n.rec.Labels, l))) continue;
      if (filters['label!']?.length && filters['label!'].some((l) => labelMatch(n.rec.Labels, l))) continue;
      if (Date.parse(n.rec.Created) >= cutoff) continue;
      await this.net!.users.remove(n);
      deleted.push(n.rec.Name);
    }
    return { NetworksDeleted: deleted };
  }

  connect(netRef: string, container: string, cfg: EndpointSettings | undefined): Promise<void> {
    if (this.predefinedNames().includes(netRef as 'bridge') || netRef === 'default') {
      throw new InvalidArgumentError(`connecting to the predefined network ${netRef} is not supported`, { hint: 'create a network (berth network create NAME) and connect to that' });
    }
    return this.attach.connect(container, netRef, cfg);
  }

  disconnect(netRef: string, container: string, force: boolean): Promise<void> {
    if (this.predefinedNames().includes(netRef as 'bridge')) {
      throw new InvalidArgumentError(`disconnecting from the predefined network ${netRef} is not supported`, { hint: 'run the container with --network NAME of a network you created' });
    }
    return this.attach.disconnect(container, netRef, force);
  }
}

function durationMs(s: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(s);
  if (!m) throw new InvalidArgumentError(`invalid until filter ${JSON.stringify(s)}`, { hint: 'e.g. 24h, 30m, or a unix timestamp' });
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}
