import type { PublishedPort } from './rules';

/**
 * What a container record keeps about its network: its mode and its endpoints (the
 * default bridge's, and one per user-defined network). Types only, in a file of their
 * own, so that the modules network.ts uses (container-links.ts) can name them without
 * importing network.ts back.
 */

export type NetworkMode = 'bridge' | 'none' | 'host';

export interface Endpoint {
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  MacAddress: string;
}

/** A container's endpoint on a user-defined network, kept for its life on that network. */
export interface UserEndpoint extends Endpoint {
  NetworkID: string;
  /** The network's name (names never change), for inspect's NetworkSettings.Networks. */
  NetworkName: string;
  /** Network-scoped names (--network-alias, compose's service name). */
  Aliases: string[];
  /** What was asked for (--ip), shown by inspect. */
  IPAMConfig?: { IPv4Address?: string } | null;
  Links?: string[] | null;
}

/** What a container record keeps about its network. */
export interface ContainerNetwork {
  Mode: NetworkMode;
  /** Its address on the default bridge, for life (bridge mode, on the default network). */
  Endpoint?: Endpoint;
  /** Its user-defined networks, by network id, in the order it joined them. */
  Networks?: Record<string, UserEndpoint>;
  /** The host ports of the current run (empty when it is not running). */
  Ports?: PublishedPort[];
}
