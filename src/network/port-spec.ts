import { isIPv4, isIPv6 } from 'node:net';
import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Published and exposed ports as the docker CLI reads and prints them. Pure functions: no
 * I/O, nothing from the engine, so the CLI and the tests share one parser.
 *
 * Words: a *port key* is Docker's `"<containerPort>/<proto>"` (`"80/tcp"`), the key of
 * Config.ExposedPorts, HostConfig.PortBindings and NetworkSettings.Ports. A *binding* is
 * `{ HostIp, HostPort }`; `""` means "any address" / "a free port the daemon picks" (HostPort
 * `"0"` too, as testcontainers sends it), and a HostPort like `"8000-8002"` means "a free one
 * in that range".
 *
 * Example: `parsePublish('127.0.0.1:8000-8001:80-81/udp')` →
 *   { exposed: ['80/udp', '81/udp'],
 *     bindings: { '80/udp': [{ HostIp: '127.0.0.1', HostPort: '8000' }],
 *                 '81/udp': [{ HostIp: '127.0.0.1', HostPort: '8001' }] } }
 */

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}

export interface PublishSpec {
  /** Port keys to add to Config.ExposedPorts, in container-port order. */
  exposed: string[];
  /** HostConfig.PortBindings entries this one `-p` adds. */
  bindings: Record<string, PortBinding[]>;
}

/** A GET /containers/json `Ports` item. */
export interface PortSummary {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

const PUBLISH_FORMS = 'use -p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp], e.g. -p 8080:80, -p 127.0.0.1::6379, -p 6379 (a random host port)';

/**
 * One `-p`/`--publish` value, as go-connections' nat.ParsePortSpec reads it: split on `:`
 * from the right (container port last, host port before it, everything before that is the
 * IP, so `::1:80:80` and `[::1]:80:80` both bind ::1), then expand ranges.
 */
export function parsePublish(spec: string): PublishSpec {
  const bad = (why: string, hint = PUBLISH_FORMS) => new InvalidArgumentError(`invalid -p ${JSON.stringify(spec)}: ${why}`, { hint });
  if (spec.trim() === '') throw bad('empty port specification');
  const parts = spec.split(':');
  const n = parts.length;
  const last = parts[n - 1];
  const hostPort = n >= 2 ? parts[n - 2] : '';
  let ip = n >= 3 ? parts.slice(0, n - 2).join(':') : '';

  if (ip.startsWith('[')) {
    if (!ip.endsWith(']')) throw bad(`bad IPv6 address ${ip}`, 'write an IPv6 address in brackets: -p [::1]:8080:80');
    ip = ip.slice(1, -1);
  }
  if (ip !== '' && !isIpLiteral(ip)) {
    throw bad(`${JSON.stringify(ip)} is not an IP address`, 'give an IPv4 or IPv6 address to bind on, e.g. -p 127.0.0.1:8080:80 or -p [::1]:8080:80; leave it out to bind all addresses');
  }

  const { port: containerPort, proto } = splitProto(last, (why, hint) => bad(why, hint));
  if (containerPort === '') throw bad('no container port', PUBLISH_FORMS);
  const [cStart, cEnd] = parseRange(containerPort, 'container port', (why, hint) => bad(why, hint));
  let hStart = 0;
  let hEnd = 0;
  // Host port 0 is Docker's "a random free port", as "" is.
  const randomHost = hostPort === '0';
  if (hostPort !== '' && !randomHost) [hStart, hEnd] = parseRange(hostPort, 'host port', (why, hint) => bad(why, hint));

  // A host range for one container port is a pool to pick from; otherwise the two sides
  // pair one to one and must be the same length.
  if (hostPort !== '' && !randomHost && cEnd - cStart !== hEnd - hStart && cStart !== cEnd) {
    throw bad(`container ports ${containerPort} and host ports ${hostPort} are not the same length`, `give ranges of equal length (-p 8000-8002:80-82), or leave the host port out (-p ${containerPort}) for random ones`);
  }

  const exposed: string[] = [];
  const bindings: Record<string, PortBinding[]> = {};
  for (let p = cStart; p <= cEnd; p++) {
    const key = `${p}/${proto}`;
    let hp = hostPort === '' || randomHost ? hostPort : String(hStart + (p - cStart));
    if (cStart === cEnd && hStart !== hEnd) hp = `${hStart}-${hEnd}`;
    exposed.push(key);
    bindings[key] = [{ HostIp: ip, HostPort: hp }];
  }
  return { exposed, bindings };
}

/** `--expose 80`, `--expose 7000-7002/udp` → port keys. */
export function parseExpose(spec: string): string[] {
  const hint = 'use --expose PORT[/tcp|/udp] or --expose START-END[/PROTO], e.g. --expose 80, --expose 7000-7002/udp; to publish, use -p';
  const bad = (why: string, h = hint) => new InvalidArgumentError(`invalid --expose ${JSON.stringify(spec)}: ${why}`, { hint: h });
  if (spec.includes(':')) throw bad('--expose takes no host port or IP', 'to publish a port on the host use -p HOST_PORT:CONTAINER_PORT; --expose only takes PORT[/PROTO]');
  const { port, proto } = splitProto(spec, bad);
  if (port === '') throw bad('no port');
  const [start, end] = parseRange(port, 'port', bad);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

/**
 * The PORTS column of `docker ps` (the docker CLI's DisplayablePorts): ports sorted, those
 * published on the same port number (or not published) grouped into ranges per IP and
 * protocol (`0.0.0.0:8000-8002->8000-8002/tcp`, `443/tcp`), then the other mappings
 * (`0.0.0.0:32768->6379/tcp`). IPv6 addresses are bracketed, as net.JoinHostPort does.
 */
export function formatPortsSummary(ports: PortSummary[]): string {
  const sorted = [...ports].sort((a, b) =>
    a.PrivatePort !== b.PrivatePort ? a.PrivatePort - b.PrivatePort
      : (a.IP ?? '') !== (b.IP ?? '') ? ((a.IP ?? '') < (b.IP ?? '') ? -1 : 1)
        : (a.PublicPort ?? 0) !== (b.PublicPort ?? 0) ? (a.PublicPort ?? 0) - (b.PublicPort ?? 0)
          : a.Type < b.Type ? -1 : a.Type > b.Type ? 1 : 0,
  );
  const groups = new Map<string, { ip: string; type: string; first: number; last: number }>();
  const result: string[] = [];
  const hostMappings: string[] = [];
  const form = (g: { ip: string; type: string; first: number; last: number }) => {
    const r = g.first === g.last ? String(g.first) : `${g.first}-${g.last}`;
    return (g.ip ? `${joinHostPort(g.ip, r)}->${r}` : r) + '/' + g.type;
  };
  for (const p of sorted) {
    const ip = p.IP ?? '';
    if (ip !== '' && (p.PublicPort ?? 0) !== p.PrivatePort) {
      hostMappings.push(`${joinHostPort(ip, String(p.PublicPort ?? 0))}->${p.PrivatePort}/${p.Type}`);
      continue;
    }
    const key = `${ip}/${p.Type}`;
    const g = groups.get(key);
    if (!g) {
      groups.set(key, { ip, type: p.Type, first: p.PrivatePort, last: p.PrivatePort });
    } else if (p.PrivatePort === g.last + 1) {
      g.last = p.PrivatePort;
    } else {
      // A gap: the finished group goes out now, the new one keeps the key's first place.
      result.push(form(g));
      groups.set(key, { ip, type: p.Type, first: p.PrivatePort, last: p.PrivatePort });
    }
  }
  for (const g of groups.values()) result.push(form(g));
  return [...result, ...hostMappings].join(', ');
}

/**
 * `docker port` lines from inspect's NetworkSettings.Ports: `6379/tcp -> 0.0.0.0:32768`,
 * or, with a filter (`6379`, `6379/udp`; tcp when no protocol), just `0.0.0.0:32768`.
 * Naturally sorted like docker's (port number, then protocol, then address). An empty
 * result with a filter means that port is not published; the caller says so.
 */
export function formatPortLines(ports: Record<string, PortBinding[] | null> | null | undefined, filter?: string): string[] {
  const all = ports ?? {};
  let out: string[];
  if (filter !== undefined) {
    const slash = filter.indexOf('/');
    const port = slash < 0 ? filter : filter.slice(0, slash);
    const proto = (slash < 0 ? '' : filter.slice(slash + 1)) || 'tcp';
    if (!/^\d+$/.test(port) || Number(port) > 65535) {
      throw new InvalidArgumentError(`invalid port ${JSON.stringify(port)}`, { hint: 'give a container port with an optional protocol, e.g. berth port CONTAINER 6379/tcp' });
    }
    out = (all[`${Number(port)}/${proto.toLowerCase()}`] ?? []).map((b) => joinHostPort(b.HostIp, b.HostPort));
  } else {
    out = Object.entries(all).flatMap(([key, bs]) => (bs ?? []).map((b) => `${key} -> ${joinHostPort(b.HostIp, b.HostPort)}`));
  }
  return out.sort(naturalCompare);
}

/** `80/udp` → {port: '80', proto: 'udp'}; no protocol is tcp; sctp and others refused. */
function splitProto(s: string, bad: (why: string, hint?: string) => Error): { port: string; proto: 'tcp' | 'udp' } {
  const [port, proto = '', ...extra] = s.split('/');
  if (extra.length) throw bad(`too many "/" in ${JSON.stringify(s)}`);
  const p = proto.toLowerCase() || 'tcp';
  if (p === 'sctp') throw bad('berth does not support sctp', 'publish tcp or udp ports: drop /sctp, or write /udp');
  if (p !== 'tcp' && p !== 'udp') throw bad(`unknown protocol ${JSON.stringify(proto)}`, 'write /tcp or /udp after the port (tcp when left out), e.g. 53/udp');
  return { port, proto: p };
}

/** `80` → [80, 80]; `8000-8002` → [8000, 8002]. Ports are 1..65535. */
function parseRange(s: string, what: string, bad: (why: string, hint?: string) => Error): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw bad(`${what} ${JSON.stringify(s)} is not a port or a range`, `a ${what} is a number from 1 to 65535, or a range like 8000-8002`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  for (const p of [start, end]) {
    if (p < 1 || p > 65535) {
      throw bad(`${what} ${p} is out of range`, `ports go from 1 to 65535${what === 'host port' ? '; leave the host port out (-p CONTAINER_PORT) for a random free one' : ''}`);
    }
  }
  if (end < start) throw bad(`${what} range ${s} is reversed`, `write the lower port first: ${end}-${start}`);
  return [start, end];
}

/** An IPv4 or IPv6 literal as Go's net.ParseIP takes it (no zone, no leading zeros). */
function isIpLiteral(ip: string): boolean {
  return isIPv4(ip) || (isIPv6(ip) && !ip.includes('%'));
}

/** Go's net.JoinHostPort: `[::1]:80`, `0.0.0.0:80`, `:80` for no host. */
function joinHostPort(host: string, port: string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** fvbommel/sortorder's NaturalLess as a comparator: digit runs compare as numbers. */
function naturalCompare(a: string, b: string): number {
  const chunks = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const x = chunks(a);
  const y = chunks(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const [p, q] = [x[i], y[i]];
    if (p === q) continue;
    const numeric = /^\d/.test(p) && /^\d/.test(q);
    if (numeric && Number(p) !== Number(q)) return Number(p) - Number(q);
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}
