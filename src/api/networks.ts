import { createHash } from 'node:crypto';
import { Router } from './router';
import { sendJSON } from './http';
import { NotFoundError } from '../../volumes/shared/errors';
import type { ContainerService } from '../engine/service';

/**
 * Docker's read-only /networks routes, so `docker network ls` and `docker network inspect`
 * show berth's three networks: the daemon's bridge, host and none. (No user-defined
 * networks yet: create/connect answer 404 with a hint.)
 */
export function networkRoutes(
  router: Router,
  engineId: string,
  containers: ContainerService,
  bridge: () => { bridge: string; subnet: string; gateway: string } | undefined,
): void {
  const idOf = (name: string) => createHash('sha256').update(`${engineId}/${name}`).digest('hex');
  const view = async (name: 'bridge' | 'host' | 'none') => {
    const b = name === 'bridge' ? bridge() : undefined;
    const members: Record<string, unknown> = {};
    for (const c of await containers.list({})) {
      if (((c.HostConfig.NetworkMode || 'default') === 'default' ? 'bridge' : c.HostConfig.NetworkMode) !== name) continue;
      const n = ((await containers.inspect(c.Id).catch(() => undefined))?.NetworkSettings.Networks as Record<string, Record<string, unknown>> | undefined)?.[name];
      members[c.Id] = {
        Name: c.Names[0]?.slice(1) ?? '',
        EndpointID: n?.EndpointID ?? '',
        MacAddress: n?.MacAddress ?? '',
        IPv4Address: n?.IPAddress ? `${n.IPAddress}/${n.IPPrefixLen}` : '',
        IPv6Address: '',
      };
    }
    return {
      Name: name,
      Id: idOf(name),
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
      Options: b ? { 'com.docker.network.bridge.name': b.bridge, 'com.docker.network.bridge.enable_ip_masquerade': 'true' } : {},
      Labels: {},
    };
  };
  const names = (): Array<'bridge' | 'host' | 'none'> => (bridge() ? ['bridge', 'host', 'none'] : ['host', 'none']);
  router.add('GET', /^\/networks$/, async ({ res }) => sendJSON(res, 200, await Promise.all(names().map(view))));
  router.add('GET', /^\/networks\/([^/]+)$/, async ({ res, params }) => {
    const ref = decodeURIComponent(params[0]);
    const name = names().find((n) => n === ref || (ref.length >= 3 && idOf(n).startsWith(ref)));
    if (!name) throw new NotFoundError(`network ${ref} not found`, { hint: 'berth has the networks bridge, host and none (docker network ls)' });
    sendJSON(res, 200, await view(name));
  });
}
