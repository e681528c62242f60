import { isIP } from 'node:net';
import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * A container's own name-resolution settings, as Docker reads them from HostConfig:
 * `Dns` (--dns), `DnsSearch` (--dns-search), `DnsOptions` (--dns-option) replace the
 * matching lines of the resolv.conf the container would get, and `ExtraHosts`
 * (--add-host NAME:IP, IP may be `host-gateway`) become lines of its /etc/hosts.
 * Pure functions: checked at create, applied when the files are written.
 *
 * Example: resolvWithOverrides('nameserver 10.0.0.1\nsearch lan\n', { servers: ['1.1.1.1'] })
 *   → 'nameserver 1.1.1.1\nsearch lan\n'
 */

/** What replaces the base resolv.conf's lines; a field left out keeps the base's lines. */
export interface DnsOverrides {
  servers?: string[];
  /** [] (from `--dns-search .`) writes no search line at all. */
  search?: string[];
  options?: string[];
}

export interface ExtraHost {
  name: string;
  /** An IP address, or the literal `host-gateway` until resolved. */
  ip: string;
}

/** Docker's word for "the host, as the container reaches it": the bridge's gateway. */
export const HOST_GATEWAY = 'host-gateway';

function strings(v: unknown, field: string, example: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError(`HostConfig.${field} must be a list of strings`, { hint: `e.g. "${field}": [${example}]` });
  }
  return v as string[];
}

function noLineBreaks(s: string, field: string): void {
  if (/[\r\n\0]/.test(s) || s.trim() === '') {
    throw new InvalidArgumentError(`invalid ${field} entry ${JSON.stringify(s)}`, { hint: `give one non-empty ${field} value per entry, without line breaks` });
  }
}

/** HostConfig.Dns/DnsSearch/DnsOptions checked; undefined when none is set. */
export function dnsOverrides(hc: { Dns?: unknown; DnsSearch?: unknown; DnsOptions?: unknown }): DnsOverrides | undefined {
  const servers = strings(hc.Dns, 'Dns', '"1.1.1.1"');
  for (const s of servers) {
    if (!isIP(s)) throw new InvalidArgumentError(`${JSON.stringify(s)} is not an IP address (HostConfig.Dns)`, { hint: 'give DNS servers as IP addresses, e.g. --dns 1.1.1.1' });
  }
  const search = strings(hc.DnsSearch, 'DnsSearch', '"example.com"');
  for (const s of search) {
    noLineBreaks(s, 'DnsSearch');
    if (s !== '.' && (s.length > 255 || !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(s))) {
      throw new InvalidArgumentError(`${JSON.stringify(s)} is not a DNS search domain (HostConfig.DnsSearch)`, { hint: 'give a domain such as example.com, or "." for none' });
    }
  }
  const options = strings(hc.DnsOptions, 'DnsOptions', '"ndots:2"');
  for (const o of options) {
    noLineBreaks(o, 'DnsOptions');
    if (/\s/.test(o)) throw new InvalidArgumentError(`invalid DNS option ${JSON.stringify(o)} (HostConfig.DnsOptions)`, { hint: 'one option per entry, e.g. ndots:2 or timeout:1' });
  }
  if (!servers.length && !search.length && !options.length) return undefined;
  const out: DnsOverrides = {};
  if (servers.length) out.servers = servers;
  // `--dns-search .` is Docker's "no search domains at all".
  if (search.length) out.search = search.filter((s) => s !== '.');
  if (options.length) out.options = options;
  return out;
}

/** The base resolv.conf with the overridden kinds of line replaced. */
export function resolvWithOverrides(base: string, o: DnsOverrides | undefined): string {
  if (!o) return base;
  const kind = (l: string) => /^\s*(nameserver|search|domain|options)\s/.exec(l)?.[1];
  const replaced = (k: string | undefined) =>
    (k === 'nameserver' && o.servers) || ((k === 'search' || k === 'domain') && o.search) || (k === 'options' && o.options);
  const kept = base.split('\n').filter((l) => l.trim() !== '' && !replaced(kind(l)));
  const lines = [
    ...(o.servers ?? []).map((s) => `nameserver ${s}`),
    ...kept.filter((l) => kind(l) === 'nameserver'),
    ...kept.filter((l) => kind(l) !== 'nameserver'),
    ...(o.search?.length ? [`search ${o.search.join(' ')}`] : []),
    ...(o.options?.length ? [`options ${o.options.join(' ')}`] : []),
  ];
  return lines.join('\n') + '\n';
}

/**
 * HostConfig.ExtraHosts checked: `name:ip` (the docker CLI's form), `name=ip`, an IPv6
 * address bare or in brackets, or `host-gateway` for the IP.
 */
export function parseExtraHosts(v: unknown): ExtraHost[] {
  const out: ExtraHost[] = [];
  for (const entry of strings(v, 'ExtraHosts', '"db:10.0.0.5"')) {
    const i = entry.search(/[:=]/);
    const name = i < 0 ? '' : entry.slice(0, i).trim();
    let ip = i < 0 ? '' : entry.slice(i + 1).trim();
    if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
    const bad = (why: string) =>
      new InvalidArgumentError(`invalid extra host ${JSON.stringify(entry)}: ${why} (HostConfig.ExtraHosts)`, {
        hint: 'use --add-host NAME:IP, e.g. db:10.0.0.5, or NAME:host-gateway for the host',
      });
    if (name === '' || /[\s#]/.test(name)) throw bad('no host name');
    if (ip !== HOST_GATEWAY && !isIP(ip)) throw bad(`${JSON.stringify(ip)} is not an IP address`);
    out.push({ name, ip });
  }
  return out;
}

/** `host-gateway` resolved to the bridge's gateway; refused when there is no bridge. */
export function resolveExtraHosts(hosts: ExtraHost[], gateway: string | undefined): ExtraHost[] {
  return hosts.map((h) => {
    if (h.ip !== HOST_GATEWAY) return h;
    if (!gateway) {
      throw new FailedPreconditionError(`${h.name}:host-gateway needs the bridge network and this daemon has none`, {
        hint: "give the host's address instead (--add-host NAME:IP)",
      });
    }
    return { name: h.name, ip: gateway };
  });
}

/** /etc/hosts lines for extra hosts, Docker's `IP\tNAME`. */
export function extraHostLines(hosts: ExtraHost[]): string {
  return hosts.map((h) => `${h.ip}\t${h.name}\n`).join('');
}

/** What writeEtcFiles needs from a HostConfig: its DNS overrides and resolved extra hosts. */
export function nameSettings(hc: { Dns?: unknown; DnsSearch?: unknown; DnsOptions?: unknown; ExtraHosts?: unknown }, gateway: string | undefined): { dns?: DnsOverrides; extraHosts?: ExtraHost[] } {
  const dns = dnsOverrides(hc);
  const extraHosts = resolveExtraHosts(parseExtraHosts(hc.ExtraHosts), gateway);
  return { ...(dns ? { dns } : {}), ...(extraHosts.length ? { extraHosts } : {}) };
}
