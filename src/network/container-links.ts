import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { ExtraHost } from './dns-options';
import type { ContainerNetwork } from './network';

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

export function linkHosts(links: LinkSpec[], own: ContainerNetwork, find: (ref: string) => { name: string; network?: ContainerNetwork } | undefined): ExtraHost[] {
  const out: ExtraHost[] = [];
  for (const l of links) {
    const t = find(l.target);
    if (!t) throw new NotFoundError(`could not get container for ${l.target}`, { hint: 'start the linked container first (or create it before this one)' });
    const shared = Object.keys(own.Networks ?? {}).find((k) => t.network?.Networks?.[k]);
    const ip = own.Endpoint && t.network?.Endpoint ? t.network.Endpoint.IPAddress : shared ? t.network!.Networks![shared].IPAddress : undefined;
    if (!ip) throw new InvalidArgumentError(`cannot link to ${l.target}: it shares no network with this container`, { hint: 'put both on the default bridge or on one network' });
    out.push({ name: [...new Set([l.alias, t.name])].join(' '), ip });
  }
  return out;
}
