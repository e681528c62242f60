import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../../volumes/shared/errors';

/**
 * Where a registry is and how to reach it, as Docker decides it:
 *
 * - **Host.** The reference's domain, except `docker.io`, whose API lives at
 *   `registry-1.docker.io` (reference.ts already turned `index.docker.io` into docker.io).
 * - **TLS.** HTTPS always, verified against the system CAs plus any `*.crt` in
 *   `/etc/docker/certs.d/HOST[:PORT]/`; a `NAME.cert` + `NAME.key` pair there is the
 *   client certificate.
 * - **Plain HTTP** only for an *insecure* registry: one on 127.0.0.0/8 (or `localhost`),
 *   or one the daemon's `--insecure-registry` names (a host[:port] or a CIDR). Even then
 *   HTTPS is tried first, and HTTP only when the TLS handshake fails, as Docker does; and
 *   as Docker, HTTPS to an insecure registry does not verify its certificate.
 */

export const DOCKER_IO = 'docker.io';
export const DOCKER_HUB_API = 'registry-1.docker.io';
export const CERTS_DIR = '/etc/docker/certs.d';

export interface EndpointOptions {
  /** `--insecure-registry` entries: host[:port] or CIDR. */
  insecure?: string[];
  /** Where per-registry certificates live (tests point it elsewhere only to refuse). */
  certsDir?: string;
}

export interface Endpoint {
  /** The reference's domain, e.g. docker.io or 127.0.0.1:5000 (credentials are keyed by it). */
  domain: string;
  /** host[:port] the API is at. */
  host: string;
  /** Its certificate is not verified, and plain HTTP may be used when HTTPS fails. */
  insecure: boolean;
  tls: TlsFiles;
}

export interface TlsFiles {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
}

export function endpointFor(domain: string, opts: EndpointOptions = {}): Endpoint {
  const host = domain === DOCKER_IO ? DOCKER_HUB_API : domain;
  return { domain, host, insecure: isInsecure(host, opts.insecure ?? []), tls: readCerts(opts.certsDir ?? CERTS_DIR, host) };
}

/** Docker's rule: loopback, or named (host[:port]) or covered (CIDR) by --insecure-registry. */
export function isInsecure(host: string, insecure: string[]): boolean {
  const name = hostname(host);
  if (name === 'localhost' || (net.isIPv4(name) && name.startsWith('127.')) || name === '::1') return true;
  for (const entry of insecure) {
    if (entry === host || entry === name) return true;
    if (entry.includes('/') && net.isIPv4(name) && inCidr(name, entry)) return true;
  }
  return false;
}

/** Validate a `--insecure-registry` value (host[:port] or an IPv4 CIDR). */
export function checkInsecureEntry(entry: string): string {
  if (/^[0-9.]+\/\d{1,2}$/.test(entry)) {
    const [ip, bits] = entry.split('/');
    if (net.isIPv4(ip) && Number(bits) <= 32) return entry;
  } else if (/^[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(entry) || /^\[[0-9a-fA-F:]+\](?::\d{1,5})?$/.test(entry)) return entry;
  throw new InvalidArgumentError(`invalid --insecure-registry ${JSON.stringify(entry)}`, {
    hint: 'give a registry as host[:port] (e.g. myreg.local:5000) or a network as an IPv4 CIDR (e.g. 10.0.0.0/8), without a scheme',
  });
}

function hostname(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const i = host.lastIndexOf(':');
  return i >= 0 ? host.slice(0, i) : host;
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!net.isIPv4(base) || !(bits >= 0 && bits <= 32)) return false;
  const n = (s: string) => s.split('.').reduce((a, b) => (a << 8) + Number(b), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (n(ip) & mask) === (n(base) & mask);
}

/** `*.crt` are CAs; `X.cert` with `X.key` is the client certificate (Docker's certs.d layout). */
function readCerts(dir: string, host: string): TlsFiles {
  const d = path.join(dir, host.replace(/\//g, '_'));
  let names: string[];
  try {
    names = fs.readdirSync(d).sort();
  } catch {
    return {};
  }
  const out: TlsFiles = {};
  for (const n of names) {
    if (n.endsWith('.crt')) (out.ca ??= []).push(fs.readFileSync(path.join(d, n)));
    else if (n.endsWith('.cert')) {
      const key = path.join(d, n.slice(0, -'.cert'.length) + '.key');
      if (!fs.existsSync(key)) {
        throw new InvalidArgumentError(`client certificate ${path.join(d, n)} has no key ${key}`, {
          hint: `put the certificate's key beside it as ${path.basename(key)}, or remove the certificate`,
        });
      }
      out.cert = fs.readFileSync(path.join(d, n));
      out.key = fs.readFileSync(key);
    }
  }
  return out;
}
