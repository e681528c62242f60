import { Router } from './router';
import { UnavailableError } from '../../volumes/shared/errors';

/**
 * berth is never part of a swarm, and answers the swarm endpoints as Docker answers them on
 * a node that is not in one: 503, with Docker's own words. Clients and test teardowns rely
 * on exactly that (docker-py's `leave_swarm(force=True)` takes a 503 as "nothing to leave";
 * `docker node ls` prints the message). Joining or making a swarm is refused the same way.
 * `/info` says `Swarm.LocalNodeState: inactive` (system.ts).
 */

/** moby's errNoManager for a node without a swarm. */
export const NOT_A_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
/** moby's errNoSwarm (leave). */
export const NOT_IN_A_SWARM = 'This node is not part of a swarm';

const HINT = 'berth runs containers on one host and has no swarm mode; use docker-compose or plain containers';

const METHODS = ['GET', 'POST', 'DELETE', 'PUT'];

export function swarmRoutes(router: Router): void {
  const refuse = (message: string) => async () => {
    throw new UnavailableError(message, { hint: HINT });
  };
  const all = (pattern: RegExp, message: string) => {
    for (const m of METHODS) router.add(m, pattern, refuse(message));
  };
  all(/^\/swarm\/leave$/, NOT_IN_A_SWARM);
  all(/^\/swarm\/(init|join)$/, 'berth cannot make or join a swarm');
  all(/^\/swarm(\/(update|unlockkey|unlock))?$/, NOT_A_MANAGER);
  all(/^\/(services|nodes|tasks|secrets|configs)(\/.*)?$/, NOT_A_MANAGER);
}
