import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { ExtraHost } from './dns-options';
import type { ContainerNetwork } from './endpoints';

/**
 * Docker's legacy links (`--link name:alias`, compose `links:`): the linking container
 * finds the target by its alias and its name through /etc/hosts. Addresses are kept for a
 * container's life, so the entry written at create stays true. The target's address is
 * the one on the default bridge, or on a user-defined network both share.
 */

export interface LinkSpec {
  target: string;
  alias: string;
}

/** `redis`, `redis:db`, `/redis:/app/db` (the API's form) → target and alias. */
export function parseLinks(v: unknown): LinkSpec[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidArgumentError('HostConfig.Links must be a list of strings', { hint: 'e.g. ["redis:db"]' });
  return (v as string[]).map((l) => {
    const [t, a] = l.split(':');
    const target = (t ?? '').replace(/^\//, '');
    const alias = (a ?? target).split('/').pop() ?? '';
    if (!target || !alias) throw new InvalidArgumentError(`invalid link ${JSON.stringify(l)}`, { hint: 'use --link NAME[:ALIAS]' });
    return { target, alias };
  });
}

/** What links need of a linked container: its name, network, and (for link env vars) Config.Env and ExposedPorts. */
export interface LinkTarget {
  name: string;
  network?: ContainerNetwork;
  env?: string[];
  exposedPorts?: Record<string, unknown>;
}

type FindTarget = (ref: string) => LinkTarget | undefined;

/** The target of one link and its address as this container sees it; `legacy` when both are on the default bridge. */
function resolveLink(l: LinkSpec, own: ContainerNetwork, find: FindTarget): { t: LinkTarget; ip: string; legacy: boolean } {
  const t = find(l.target);
  if (!t) throw new NotFoundError(`could not get container for ${l.target}`, { hint: 'start the linked container first (or create it before this one)' });
  const shared = Object.keys(own.Networks ?? {}).find((k) => t.network?.Networks?.[k]);
  const legacy = !!(own.Endpoint && t.network?.Endpoint);
  const ip = legacy ? t.network!.Endpoint!.IPAddress : shared ? t.network!.Networks![shared].IPAddress : undefined;
  if (!ip) throw new InvalidArgumentError(`cannot link to ${l.target}: it shares no network with this container`, { hint: 'put both on the default bridge or on one network' });
  return { t, ip, legacy };
}

export function linkHosts(links: LinkSpec[], own: ContainerNetwork, find: FindTarget): ExtraHost[] {
  return links.map((l) => {
    const { t, ip } = resolveLink(l, own, find);
    return { name: [...new Set([l.alias, t.name])].join(' '), ip };
  });
}

/**
 * Docker's legacy link environment variables for the linking container `self` (its name,
 * with or without the leading '/'): ALIAS_NAME, ALIAS_ENV_* from the target's Config.Env
 * (not HOME or PATH) and ALIAS_PORT* for its exposed ports, lowest first, tcp before udp.
 * Only links on the default bridge get them, as in Docker.
 */
export function linkEnv(self: string, links: LinkSpec[], own: ContainerNetwork, find: FindTarget): string[] {
  const out: string[] = [];
  for (const l of links) {
    const { t, ip, legacy } = resolveLink(l, own, find);
    if (!legacy) continue;
    const A = l.alias.toUpperCase().replace(/-/g, '_');
    out.push(`${A}_NAME=/${self.replace(/^\//, '')}/${l.alias}`);
    for (const e of t.env ?? []) {
      const i = e.indexOf('=');
      if (i < 0) continue;
      const k = e.slice(0, i);
      if (k !== 'HOME' && k !== 'PATH') out.push(`${A}_ENV_${k}=${e.slice(i + 1)}`);
    }
    const ports = Object.keys(t.exposedPorts ?? {})
      .map((k) => {
        const [n, proto] = k.split('/');
        return { port: Number(n), proto: (proto || 'tcp').toLowerCase() };
      })
      .filter((p) => Number.isInteger(p.port) && p.port > 0)
      .sort((a, b) => a.port - b.port || (a.proto === 'tcp' ? -1 : b.proto === 'tcp' ? 1 : a.proto.localeCompare(b.proto)));
    if (ports.length) out.push(`${A}_PORT=${ports[0].proto}://${ip}:${ports[0].port}`);
    for (const { port, proto } of ports) {
      const P = `${A}_PORT_${port}_${proto.toUpperCase()}`;
      out.push(`${P}=${proto}://${ip}:${port}`, `${P}_ADDR=${ip}`, `${P}_PORT=${port}`, `${P}_PROTO=${proto}`);
    }
  }
  return out;
}
