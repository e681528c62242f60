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

  constructor(readonly subnet: Subnet) {
    this.next = gatewayOf(subnet) + 1;
  }

  /** Mark an address (from a record) as taken; false if it is not ours to use. */
  take(ip: number): boolean {
    if (!this.usable(ip) || this.used.has(ip)) return false;
    this.used.add(ip);
    return true;
  }

  allocate(): number {
    const first = gatewayOf(this.subnet) + 1;
    const last = this.subnet.base + size(this.subnet) - 2;
    const count = last - first + 1;
    for (let i = 0; i < count; i++) {
      // Round-robin from the last one given, so a freed address is not reused at once
      // (a client's ARP cache or conntrack entry may still point at it).
      const ip = first + ((this.next - first + i) % count);
      if (!this.used.has(ip)) {
        this.used.add(ip);
        this.next = ip + 1 > last ? first : ip + 1;
        return ip;
      }
    }
    throw new FailedPreconditionError(`no free address left in ${numToIp(this.subnet.base)}/${this.subnet.prefix}`, {
      hint: 'remove containers you no longer need, or give the daemon a larger --subnet',
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

  private usable(ip: number): boolean {
    return ip > gatewayOf(this.subnet) && ip < this.subnet.base + size(this.subnet) - 1;
  }
}
