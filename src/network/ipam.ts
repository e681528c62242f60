import { FailedPreconditionError } from '../../volumes/shared/errors';
import { gatewayOf, numToIp, size, type Subnet } from './ipv4';

/**
 * Address assignment on the bridge: the lowest free host address, never the network
 * address, the gateway or the broadcast address. The daemon owns the subnet alone, and
 * the addresses in use are those in the container records (persisted with them), so
 * the allocator is rebuilt from the records at start and needs no file of its own.
 */
export class Ipam {
  private readonly used = new Set<number>();
  private next: number;
  private readonly first: number;
  private readonly last: number;

  /**
   * `range`: where automatic addresses come from (Docker's IPRange), inside the subnet;
   * `gateway`: never given out (default: the first host address).
   */
  constructor(
    readonly subnet: Subnet,
    range?: Subnet,
    private readonly gateway = gatewayOf(subnet),
  ) {
    const r = range ?? subnet;
    this.first = Math.max(r.base, subnet.base + 1);
    this.last = Math.min(r.base + size(r) - 1, subnet.base + size(subnet) - 2);
    this.next = this.first;
  }

  /** Mark an address (from a record, or asked for with --ip) as taken; false if it is not ours to use. */
  take(ip: number): boolean {
    if (!this.usable(ip) || this.used.has(ip)) return false;
    this.used.add(ip);
    return true;
  }

  allocate(): number {
    const count = this.last - this.first + 1;
    for (let i = 0; i < count; i++) {
      // Round-robin from the last one given, so a freed address is not reused at once
      // (a client's ARP cache or conntrack entry may still point at it).
      const ip = this.first + ((this.next - this.first + i) % count);
      if (!this.used.has(ip) && ip !== this.gateway) {
        this.used.add(ip);
        this.next = ip + 1 > this.last ? this.first : ip + 1;
        return ip;
      }
    }
    throw new FailedPreconditionError(`no free address left in ${numToIp(this.subnet.base)}/${this.subnet.prefix}`, {
      hint: 'remove containers you no longer need, or give the network a larger subnet',
    });
  }

  /** The address `allocate` would give now, without taking it or moving on. */
  peek(): number {
    const next = this.next;
    const ip = this.allocate();
    this.used.delete(ip);
    this.next = next;
    return ip;
  }

  release(ip: number): void {
    this.used.delete(ip);
  }

  /** A host address of the subnet other than the gateway (the network and broadcast addresses never are). */
  usable(ip: number): boolean {
    return ip > this.subnet.base && ip < this.subnet.base + size(this.subnet) - 1 && ip !== this.gateway;
  }
}
