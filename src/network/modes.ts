import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { portRequests } from './mappings';
import type { PortRequest } from './reservations';
import type { ContainerNetwork, NetworkMode } from './endpoints';

/**
 * A container's network mode with the checks of a create's ports against it, the names of
 * its veths and its MAC, and the endpoint settings a create or connect asks for (the
 * endpoint types themselves are endpoints.ts'). Pure: nothing here touches the host.
 */

/** A container as the network sees it (the engine's records, read when asked). */
export interface DirectoryEntry {
  id: string;
  name: string;
  running: boolean;
  network?: ContainerNetwork;
  /** Its --dns servers: on user-defined networks the embedded DNS forwards to them. */
  dns?: string[];
}


/** The MAC a container's address gives it (Docker's 02:42 + the address). */
export function macOf(ip: number): string {
  return ['02', '42', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** The host end of a container's veth pair on the default bridge. */
export function vethName(id: string): string {
  return `bv${id.slice(0, 12)}`;
}

/** The address a running container's published ports go to, from its record (at start, before networks are open). */
export function recordedAddress(cn: ContainerNetwork | undefined): string | undefined {
  return cn?.Endpoint?.IPAddress ?? Object.values(cn?.Networks ?? {})[0]?.IPAddress;
}

/** The host end of a container's veth pair on a user-defined network. */
export function userVethName(id: string, netId: string): string {
  return `bu${id.slice(0, 7)}${netId.slice(0, 6)}`;
}

/** Docker's EndpointSettings (NetworkingConfig.EndpointsConfig[name], connect's EndpointConfig), the parts berth reads. */
export interface EndpointSettings {
  Aliases?: string[] | null;
  Links?: string[] | null;
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
}

/** A create's HostConfig.NetworkMode among the predefined ones (a user-defined network is BridgeNetwork's to find). */
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

