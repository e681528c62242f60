import { Router } from './router';
import { qfilters, sendEmpty, sendJSON } from './http';
import { readJSON } from './json-body';
import { NETWORK_CONNECT_BODY, NETWORK_CREATE_BODY, NETWORK_DISCONNECT_BODY } from './schemas/bodies';
import type { Networks } from '../network/service';
import type { EndpointSettings } from '../network/network';
import type { CreateNetworkBody } from '../network/user-networks';

/**
 * Docker's /networks routes: list (with filters), inspect, create, delete, prune, and
 * connect/disconnect of containers (hot-plugged when they run). The work is the networks
 * service's (src/network/service.ts).
 */
export function networkRoutes(router: Router, networks: Networks): void {
  router.add('GET', /^\/networks\/?$/, async ({ res, query }) => sendJSON(res, 200, networks.list(qfilters(query))));
  router.add('POST', /^\/networks\/create$/, async ({ req, res }) => sendJSON(res, 201, await networks.create(await readJSON<CreateNetworkBody>(req, NETWORK_CREATE_BODY, {}))));
  router.add('POST', /^\/networks\/prune$/, async ({ res, query }) => sendJSON(res, 200, await networks.prune(qfilters(query))));
  router.add('GET', /^\/networks\/([^/]+)$/, async ({ res, params }) => sendJSON(res, 200, networks.inspect(params[0])));
  router.add('DELETE', /^\/networks\/([^/]+)$/, async ({ res, params }) => {
    await networks.remove(params[0]);
    sendEmpty(res, 204);
  });
  router.add('POST', /^\/networks\/([^/]+)\/connect$/, async ({ req, res, params }) => {
    const body = await readJSON<{ Container?: string; EndpointConfig?: EndpointSettings }>(req, NETWORK_CONNECT_BODY, {});
    await networks.connect(params[0], String(body.Container ?? ''), body.EndpointConfig ?? undefined);
    sendEmpty(res, 200);
  });
  router.add('POST', /^\/networks\/([^/]+)\/disconnect$/, async ({ req, res, params }) => {
    const body = await readJSON<{ Container?: string; Force?: boolean }>(req, NETWORK_DISCONNECT_BODY, {});
    await networks.disconnect(params[0], String(body.Container ?? ''), body.Force === true);
    sendEmpty(res, 200);
  });
}
