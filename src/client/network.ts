import { Transport } from './transport';
import type { CreateBody } from '../engine/service';

/**
 * What berthd would do to the host's network for a container, without doing it: the
 * iptables rules (one `-t nat -A BERTH-DNAT -p tcp ...` line each) and any warnings
 * (e.g. "published ports are discarded in host network mode").
 */
export interface NetworkPlan {
  Rules: string[];
  Warnings: string[];
}

/** berth's network extension endpoints over the socket. */
export class RemoteNetworkClient {
  constructor(private t: Transport) {}

  /** POST /berth/v1/network/plan: the plan for a create body; creates nothing. */
  plan(body: CreateBody, name?: string): Promise<NetworkPlan> {
    return this.t.json('POST', '/berth/v1/network/plan', { query: { name }, body });
  }
}
