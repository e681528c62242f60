import { InvalidArgumentError } from '../../volumes/shared/errors';

/** IPv4 addresses as 32-bit numbers, and CIDR subnets: what the bridge and IPAM need. */

export interface Subnet {
  /** The network address as a number. */
  base: number;
  prefix: number;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIPv4(s: string): boolean {
  const m = DOTTED.exec(s);
  return !!m && m.slice(1).every((o) => Number(o) <= 255 && (o === '0' || !o.startsWith('0')));
}

export function ipToNum(s: string): number {
  if (!isIPv4(s)) throw new InvalidArgumentError(`${JSON.stringify(s)} is not an IPv4 address`, { hint: 'write it dotted, e.g. 10.88.0.1' });
  return s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function numToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** `10.88.0.0/16` → a Subnet; the address must be the network address. */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr);
  const hint = 'give a private IPv4 subnet in CIDR form, e.g. 10.88.0.0/16 (prefix 8 to 29)';
  if (!m || !isIPv4(m[1])) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(cidr)}`, { hint });
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 29) throw new InvalidArgumentError(`subnet ${cidr}: prefix /${prefix} is out of range`, { hint });
  const base = ipToNum(m[1]);
  if ((base & mask(prefix)) >>> 0 !== base) {
    throw new InvalidArgumentError(`subnet ${cidr} has host bits set`, { hint: `did you mean ${numToIp((base & mask(prefix)) >>> 0)}/${prefix}?` });
  }
  return { base, prefix };
}

/** The subnet of `ip`/`prefix` (host bits cleared), e.g. a route's destination. */
export function subnetOf(ip: number, prefix: number): Subnet {
  return { base: (ip & mask(prefix)) >>> 0, prefix };
}

export function formatSubnet(s: Subnet): string {
  return `${numToIp(s.base)}/${s.prefix}`;
}

export function size(s: Subnet): number {
  return 2 ** (32 - s.prefix);
}

export function contains(s: Subnet, ip: number): boolean {
  return (ip & mask(s.prefix)) >>> 0 === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & mask(p)) >>> 0 === (b.base & mask(p)) >>> 0;
}

/** The bridge's own address: the first host address, as Docker's gateway. */
export function gatewayOf(s: Subnet): number {
  return s.base + 1;
}
