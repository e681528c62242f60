import * as os from 'node:os';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { isIPv4 } from './ipv4';
import type { PortRequest } from './reservations';
import type { PublishedPort } from './rules';

/**
 * Docker's port fields of a create body (ExposedPorts, HostConfig.PortBindings,
 * PublishAllPorts) checked and turned into reservation requests, and the published
 * ports turned back into Docker's views (inspect's NetworkSettings.Ports, ps's Ports).
 */

const PORT_HINT = 'a port is a number from 1 to 65535, optionally with /tcp or /udp, e.g. 6379/tcp';

/** `80/tcp`, `80` → { port, proto }. */
export function parsePortKey(key: string): { port: number; proto: 'tcp' | 'udp' } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(String(key));
  if (!m) throw new InvalidArgumentError(`invalid port ${JSON.stringify(key)}`, { hint: PORT_HINT });
  const port = Number(m[1]);
  if (port < 1 || port > 65535) throw new InvalidArgumentError(`invalid port ${JSON.stringify(key)}: out of range`, { hint: PORT_HINT });
  const proto = (m[2] ?? 'tcp').toLowerCase();
  if (proto === 'sctp') throw new InvalidArgumentError(`sctp port ${key} is not supported`, { hint: 'berth publishes tcp and udp ports' });
  return { port, proto: proto as 'tcp' | 'udp' };
}

function parseHostPort(s: string, key: string): [number, number] {
  // "0" is Docker's (and testcontainers') way to ask for a random port, like "".
  if (s === '' || s === undefined || s === null || String(s) === '0') return [0, 0];
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(String(s));
  const hint = 'give a host port from 1 to 65535, a range like 8000-8010, or nothing (or 0) for a random one';
  if (!m) throw new InvalidArgumentError(`invalid host port ${JSON.stringify(s)} for ${key}`, { hint });
  const lo = Number(m[1]);
  const hi = m[2] !== undefined ? Number(m[2]) : lo;
  if (lo < 1 || hi > 65535 || hi < lo) throw new InvalidArgumentError(`invalid host port ${JSON.stringify(s)} for ${key}`, { hint });
  return [lo, hi];
}

/** Is `ip` an address this host has (127/8 always is)? */
export function isLocalAddress(ip: string): boolean {
  if (ip === '0.0.0.0' || ip.startsWith('127.')) return true;
  return Object.values(os.networkInterfaces()).some((list) => (list ?? []).some((a) => a.family === 'IPv4' && a.address === ip));
}

function parseHostIp(s: string | undefined, key: string): string {
  const ip = s ?? '';
  if (ip === '' || ip === '0.0.0.0') return '0.0.0.0';
  if (ip === '::' || ip === '[::]') return '0.0.0.0'; // Docker's "every address": berth publishes on IPv4
  if (!isIPv4(ip)) {
    throw new InvalidArgumentError(`invalid host IP ${JSON.stringify(ip)} for ${key}`, { hint: 'give an IPv4 address of this host, e.g. 127.0.0.1, or leave it out for every address' });
  }
  if (!isLocalAddress(ip)) {
    throw new InvalidArgumentError(`${ip} is not an address of this host`, { hint: 'publish on 127.0.0.1, on 0.0.0.0 (every address) or on one `ip addr` lists' });
  }
  return ip;
}

/**
 * The ports a container asks to publish. `publishAll` (-P) adds a random host port for
 * every exposed port that has no binding. Throws on anything malformed.
 */
export function portRequests(
  exposed: Record<string, unknown> | null | undefined,
  bindings: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null | undefined,
  publishAll: boolean,
): PortRequest[] {
  const out: PortRequest[] = [];
  const bound = new Set<string>();
  if (bindings !== null && bindings !== undefined && (typeof bindings !== 'object' || Array.isArray(bindings))) {
    throw new InvalidArgumentError('HostConfig.PortBindings must be an object', { hint: 'e.g. {"80/tcp": [{"HostPort": "8080"}]}' });
  }
  for (const [key, list] of Object.entries(bindings ?? {})) {
    const { port, proto } = parsePortKey(key);
    bound.add(`${port}/${proto}`);
    if (list === null) continue;
    if (!Array.isArray(list)) throw new InvalidArgumentError(`PortBindings[${key}] must be a list`, { hint: 'e.g. [{"HostIp": "", "HostPort": "8080"}]' });
    for (const b of list.length ? list : [{}]) {
      const [lo, hi] = parseHostPort(b?.HostPort ?? '', key);
      out.push({ proto, containerPort: port, hostIp: parseHostIp(b?.HostIp, key), hostPortLo: lo, hostPortHi: hi });
    }
  }
  for (const key of Object.keys(exposed ?? {})) {
    const { port, proto } = parsePortKey(key);
    if (publishAll && !bound.has(`${port}/${proto}`)) out.push({ proto, containerPort: port, hostIp: '0.0.0.0', hostPortLo: 0, hostPortHi: 0 });
  }
  return out;
}

/** inspect's NetworkSettings.Ports: every exposed port, with its bindings or null. */
export function portsView(exposed: Record<string, unknown> | null | undefined, published: PublishedPort[]): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const key of Object.keys(exposed ?? {})) {
    const { port, proto } = parsePortKey(key);
    out[`${port}/${proto}`] = null;
  }
  for (const p of published) {
    const key = `${p.containerPort}/${p.proto}`;
    (out[key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  }
  return out;
}

/** ps's Ports: one entry per published port, and exposed ports without a binding. */
export function summaryPorts(exposed: Record<string, unknown> | null | undefined, published: PublishedPort[]): Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> {
  const out: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> = published.map((p) => ({
    IP: p.hostIp,
    PrivatePort: p.containerPort,
    PublicPort: p.hostPort,
    Type: p.proto,
  }));
  for (const key of Object.keys(exposed ?? {})) {
    const { port, proto } = parsePortKey(key);
    if (!published.some((p) => p.containerPort === port && p.proto === proto)) out.push({ PrivatePort: port, Type: proto });
  }
  return out;
}
