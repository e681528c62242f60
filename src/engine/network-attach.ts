import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import type { BridgeNetwork, ContainerNetwork, EndpointSettings } from '../network/network';
import { nameSettings } from '../network/dns-options';
import { linkEnv, linkHosts, parseLinks, type LinkTarget } from '../network/container-links';
import { writeResolvConf, type EtcContent } from './etc-files';
import type { NetworkAttach } from '../network/service';
import type { ContainerRecord } from './container-record';
import type { EngineContext } from './context';

/**
 * The engine's side of user-defined networks: `network connect` and `disconnect` of a
 * container (under its lock; a running one is hot-plugged), the directory the embedded
 * DNS and network inspect read (the records, at the moment they ask), and repairing the
 * network of containers adopted at start. The network work itself is BridgeNetwork's.
 */

export interface AttachDeps {
  net?: BridgeNetwork;
  checkOpen(): void;
  live(ref: string): { id: string; rec: ContainerRecord; lock: { run<T>(fn: () => Promise<T>): Promise<T> } };
  save(rec: ContainerRecord): Promise<void>;
  all(): ContainerRecord[];
  log(msg: string): void;
  /** The file bind-mounted over a container's /etc/resolv.conf. */
  resolvConfPath(id: string): string;
}

/** The deps from the engine's shared context. */
export function attachDeps(ctx: EngineContext): AttachDeps {
  return {
    get net() {
      return ctx.net;
    },
    checkOpen: () => ctx.checkOpen(),
    live: (ref) => ctx.live(ref),
    save: (rec) => ctx.save(rec),
    all: () => ctx.store.all(),
    log: (m) => ctx.log(m),
    resolvConfPath: (id) => ctx.store.paths(id).resolvConf,
  };
}

/** A container's name, network, env and exposed ports by reference, for links (undefined if there is none). */
export function findRecord(ctx: EngineContext, ref: string): LinkTarget | undefined {
  try {
    const r = ctx.store.find(ref);
    return { name: r.Name.slice(1), network: r.Network, env: r.Config.Env, exposedPorts: r.Config.ExposedPorts as Record<string, unknown> | undefined };
  } catch {
    return undefined;
  }
}

function running(rec: ContainerRecord): boolean {
  return rec.State.Status === 'running' || rec.State.Status === 'paused';
}

function needNet(d: AttachDeps): BridgeNetwork {
  if (!d.net) throw new FailedPreconditionError('this daemon has no bridge network', { hint: 'start berthd with networking' });
  return d.net;
}

function dnsServers(r: ContainerRecord): string[] | undefined {
  const dns = (r.HostConfig as { Dns?: unknown }).Dns;
  return Array.isArray(dns) && dns.length ? dns.filter((x): x is string => typeof x === 'string') : undefined;
}

/** Hand the records to the network (embedded DNS, network inspect). */
export function wireDirectory(d: AttachDeps): void {
  d.net?.setDirectory(
    () => d.all().map((r) => ({ id: r.Id, name: r.Name.slice(1), running: running(r), network: r.Network, dns: dnsServers(r) })),
    changes(d.all),
  );
}

/**
 * A number that changes whenever a record that the directory reads may have: a record
 * came or went, or its State, Network, Name or HostConfig is another value. Those are
 * replaced, never changed in place (state.ts, and the spreads that change Network), so
 * comparing them with === is enough, and costs a pass over the records without building
 * anything.
 */
export function changes(all: () => ContainerRecord[]): () => number {
  let seen: Array<[ContainerRecord, unknown, unknown, string, unknown]> = [];
  let version = 0;
  return () => {
    const now = all();
    let same = now.length === seen.length;
    for (let i = 0; same && i < now.length; i++) {
      const [rec, state, network, name, hc] = seen[i];
      const r = now[i];
      same = rec === r && state === r.State && network === r.Network && name === r.Name && hc === r.HostConfig;
    }
    if (!same) {
      seen = now.map((r) => [r, r.State, r.Network, r.Name, r.HostConfig]);
      version++;
    }
    return version;
  };
}

/**
 * One connect or disconnect: under the container's lock, `change` works on the network and
 * returns the container's new endpoint list, which is then saved with the record. A container
 * without a network is refused here (connect treats it as mode `none`, as Docker words it).
 */
async function changeNetworks(
  d: AttachDeps,
  ref: string,
  change: (net: BridgeNetwork, rec: ContainerRecord, cn: ContainerNetwork) => Promise<ContainerNetwork['Networks']>,
  noNetworkMode?: string,
): Promise<void> {
  d.checkOpen();
  const net = needNet(d);
  const c = d.live(ref);
  await c.lock.run(async () => {
    const rec = c.rec;
    const cn = rec.Network ?? (noNetworkMode ? ({ Mode: noNetworkMode } as ContainerNetwork) : undefined);
    if (!cn) throw new InvalidArgumentError(`container ${rec.Name.slice(1)} has no network`, { hint: 'berth inspect shows its networks' });
    const networks = await change(net, rec, cn);
    rec.Network = { ...cn, Networks: networks };
    await d.save(rec);
    await switchResolver(d, net, rec, cn);
  });
}

function onUserNetwork(cn: ContainerNetwork | undefined): boolean {
  return Object.keys(cn?.Networks ?? {}).length > 0;
}

/**
 * After a connect or disconnect: a container that joined its first user-defined network
 * now asks the embedded DNS (nameserver 127.0.0.11; its --dns servers are where that
 * forwards), as Docker switches it, so container names resolve; one that left its last
 * goes back to the host's resolvers (or its --dns). Docker keeps a running container on
 * its resolver until it restarts; berth's embedded DNS listens on the user-defined
 * networks' gateways, so with none left there is nothing at 127.0.0.11 to ask. A running
 * container sees the change at once (the file is rewritten in place, under its bind
 * mount); a stopped one when it starts. Otherwise the file is left as it is (it may have
 * been edited inside the container).
 */
async function switchResolver(d: AttachDeps, net: BridgeNetwork, rec: ContainerRecord, before: ContainerNetwork): Promise<void> {
  if (onUserNetwork(before) === onUserNetwork(rec.Network) || !rec.Network) return;
  const etc = etcNetwork(net, rec.Network, rec.HostConfig, () => undefined);
  await writeResolvConf(d.resolvConfPath(rec.Id), etc).catch((e) => d.log(`${rec.Id}: rewriting resolv.conf: ${(e as Error).message}`));
}

export function networkAttach(d: AttachDeps): NetworkAttach {
  return {
    async connect(ref: string, netRef: string, cfg: EndpointSettings | undefined) {
      await changeNetworks(d, ref, async (net, rec, cn) => {
        if (cn.Mode !== 'bridge') {
          throw new InvalidArgumentError(`container ${rec.Name.slice(1)} uses network mode ${cn.Mode} and cannot be connected to other networks`, {
            hint: 'only containers on bridge networks join others; recreate it with --network NAME',
          });
        }
        const ep = await net.connectNetwork(rec.Id, rec.Name.slice(1), running(rec) ? rec.State.Pid : undefined, cn, netRef, cfg);
        return { ...(cn.Networks ?? {}), [ep.NetworkID]: ep };
      }, 'none');
    },
    async disconnect(ref: string, netRef: string, force: boolean) {
      await changeNetworks(d, ref, async (net, rec, cn) => {
        const netId = await net.disconnectNetwork(rec.Id, rec.Name.slice(1), running(rec) ? rec.State.Pid : undefined, cn, netRef, force);
        const rest = { ...(cn.Networks ?? {}) };
        delete rest[netId];
        return rest;
      });
    },
    predefinedMembers(name) {
      return d
        .all()
        .filter((r) => running(r) && ((r.HostConfig.NetworkMode || 'default') === 'default' ? 'bridge' : r.HostConfig.NetworkMode) === name)
        .map((r) => ({ id: r.Id, name: r.Name.slice(1), ip: r.Network?.Endpoint?.IPAddress, prefix: r.Network?.Endpoint?.IPPrefixLen, mac: r.Network?.Endpoint?.MacAddress }));
    },
  };
}

/**
 * At start, after reconcile: a running container whose veth (on any of its networks) is
 * gone gets it back at the same address; one that cannot is told in its state's Error.
 */
export async function repairNetworks(d: AttachDeps): Promise<void> {
  const net = d.net;
  if (!net) return;
  for (const rec of d.all()) {
    if (!running(rec) || !rec.State.Pid || !net.bridged(rec.Network)) continue;
    try {
      const fixed = await net.repair(rec.Id, rec.State.Pid, rec.Network!);
      if (fixed.length) d.log(`${rec.Id}: network repaired: ${fixed.join(', ')}`);
    } catch (e) {
      d.log(`${rec.Id}: cannot repair its network: ${(e as Error).message}`);
      rec.State = { ...rec.State, Error: `network: ${(e as Error).message}` };
      await d.save(rec).catch(() => undefined);
    }
  }
}

/** The network parts of a container's /etc files: its address, resolv.conf, --dns/--add-host, links. */
export function etcNetwork(
  net: BridgeNetwork | undefined,
  cn: ContainerNetwork,
  hc: ContainerRecord['HostConfig'],
  find: (ref: string) => LinkTarget | undefined,
): Pick<EtcContent, 'address' | 'resolvConf' | 'dns' | 'extraHosts'> {
  const names = nameSettings(hc, net?.info().gateway);
  const links = linkHosts(parseLinks((hc as { Links?: unknown }).Links), cn, find);
  const address = net?.primaryAddress(cn) ?? Object.values(cn.Networks ?? {})[0]?.IPAddress;
  // On a user-defined network the container keeps asking 127.0.0.11, and its --dns servers
  // are where the embedded DNS forwards (Docker's way): names of containers keep resolving.
  if (names.dns?.servers && Object.keys(cn.Networks ?? {}).length > 0) names.dns = { ...names.dns, servers: undefined };
  return {
    address,
    resolvConf: net && net.bridged(cn) ? net.resolvConfFor(cn) : undefined,
    ...names,
    ...(links.length || names.extraHosts?.length ? { extraHosts: [...(names.extraHosts ?? []), ...links] } : {}),
  };
}

/** The legacy link env vars (`--link` on the default bridge) a container's process starts with. */
export function linkEnvFor(ctx: EngineContext, rec: ContainerRecord): string[] {
  const links = parseLinks((rec.HostConfig as { Links?: unknown }).Links);
  if (!links.length || !rec.Network) return [];
  return linkEnv(rec.Name, links, rec.Network, (ref) => findRecord(ctx, ref));
}
