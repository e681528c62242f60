import { checkPorts, networkMode, recordedAddress, type BridgeNetwork, type EndpointSettings, type NetworkMode } from '../network/network';
import { attachDeps, wireDirectory } from './network-attach';
import type { ContainerRecord } from './container-record';
import type { EngineContext } from './context';
import { planCreate } from './create-config';
import type { CreateBody } from './service';
import { isUp } from './state';

/** The ports a container publishes (checked; CONFLICT-free until reserved at start). */
export function portPlan(mode: NetworkMode, c: Pick<ContainerRecord, 'Config' | 'HostConfig'>): ReturnType<typeof checkPorts> {
  const hc = c.HostConfig;
  return checkPorts(mode, c.Config.ExposedPorts as Record<string, unknown> | undefined, hc.PortBindings, !!hc.PublishAllPorts);
}

/**
 * The iptables rules a container made from `body` would get, without making it
 * (`berth run --dry-run`): its address would be the next free one, a random port
 * is shown as such.
 */
export async function networkPlan(ctx: EngineContext, body: CreateBody): Promise<{ Rules: string[]; Warnings: string[] }> {
  ctx.checkOpen();
  const image = await ctx.opts.images.resolve(body?.Image);
  const plan = planCreate(body, image.config, '0'.repeat(64));
  const endpoints = (body.NetworkingConfig as { EndpointsConfig?: Record<string, EndpointSettings> } | undefined)?.EndpointsConfig;
  // A user-defined network is known to the network alone; without one, only the predefined modes exist.
  const { mode, ip } = ctx.net ? ctx.net.peekEndpoint(plan.HostConfig.NetworkMode, endpoints) : { mode: networkMode(plan.HostConfig.NetworkMode), ip: undefined };
  const { requests, warnings } = portPlan(mode, plan);
  if (!ctx.net || mode !== 'bridge' || !ip) return { Rules: [], Warnings: warnings };
  const ports = requests.map((r) => ({ proto: r.proto, hostIp: r.hostIp, hostPort: r.hostPortLo, containerPort: r.containerPort }));
  const rules = ctx.net.planFor(ip, ports).map((l) => l.replace(/--dport 0\b/, '--dport RANDOM'));
  return { Rules: rules, Warnings: warnings };
}

/**
 * At open: the bridge network, with the published ports of the containers the records
 * say are running restored in the same transaction, and every recorded address taken.
 */
export async function openNetwork(ctx: EngineContext): Promise<BridgeNetwork | undefined> {
  if (!ctx.opts.openNetwork) return undefined;
  const all = ctx.store.all();
  const running = all
    .filter((r) => isUp(r) && recordedAddress(r.Network) && r.Network!.Ports?.length)
    .map((r) => ({ id: r.Id, name: r.Name.slice(1), ip: recordedAddress(r.Network)!, ports: r.Network!.Ports! }));
  const net = await ctx.opts.openNetwork(running, all.map((r) => r.Id));
  for (const r of all) net.adoptAll(r.Network);
  ctx.net = net;
  wireDirectory(attachDeps(ctx));
  return net;
}
