import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { ConflictError, FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import type { PublishedPort } from './rules';

/**
 * Host ports belong to one container at a time, and berthd proves it by holding a real
 * socket bound to each published port: no container and no host process can take a port
 * while it is published (their bind fails), and a port some process already holds cannot
 * be published. Packets never reach these sockets (the DNAT rules take them first); a
 * connection that somehow does is closed at once.
 *
 * The claim is made in memory, synchronously, before the bind: of twenty concurrent
 * requests for one port exactly one wins, and the others are told who holds it.
 */

export interface PortRequest {
  proto: 'tcp' | 'udp';
  containerPort: number;
  /** '0.0.0.0' or one address of the host. */
  hostIp: string;
  /** 0 for a random port from the ephemeral range; a range [lo, hi] picks the first free. */
  hostPortLo: number;
  hostPortHi: number;
}

interface Held {
  owner: string;
  ownerName: string;
  port: PublishedPort;
  close(): void;
}

export function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // not Linux: Docker's default range
  }
  return [32768, 60999];
}

function bindTcp(ip: string, port: number): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => s.destroy());
    server.once('error', reject);
    server.listen({ host: ip, port, exclusive: true, backlog: 1 }, () => {
      server.removeListener('error', reject);
      server.on('error', () => undefined);
      server.unref();
      resolve(() => server.close());
    });
  });
}

function bindUdp(ip: string, port: number): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: 'udp4' });
    sock.once('error', reject);
    sock.bind({ address: ip, port, exclusive: true }, () => {
      sock.removeListener('error', reject);
      sock.on('error', () => undefined);
      sock.unref();
      resolve(() => sock.close());
    });
  });
}

export class PortReservations {
  private readonly held = new Map<string, Held>();

  private key(proto: string, ip: string, port: number): string {
    return `${proto}/${ip}/${port}`;
  }

  /** Who holds proto/port on ip (0.0.0.0 overlaps every address), if anyone. */
  holder(proto: string, ip: string, port: number): Held | undefined {
    for (const h of this.held.values()) {
      if (h.port.proto !== proto || h.port.hostPort !== port) continue;
      if (h.port.hostIp === ip || h.port.hostIp === '0.0.0.0' || ip === '0.0.0.0') return h;
    }
    return undefined;
  }

  /** Reserve every request for `owner`, all or nothing. */
  async reserve(owner: string, ownerName: string, reqs: PortRequest[]): Promise<PublishedPort[]> {
    const got: PublishedPort[] = [];
    try {
      for (const r of reqs) got.push(await this.reserveOne(owner, ownerName, r));
    } catch (e) {
      this.release(owner);
      throw e;
    }
    return got;
  }

  /** Take back ports a running container had before the daemon restarted (best effort). */
  async readopt(owner: string, ownerName: string, ports: PublishedPort[]): Promise<string[]> {
    const problems: string[] = [];
    for (const p of ports) {
      try {
        await this.reserveOne(owner, ownerName, { proto: p.proto, containerPort: p.containerPort, hostIp: p.hostIp, hostPortLo: p.hostPort, hostPortHi: p.hostPort });
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    return problems;
  }

  release(owner: string): void {
    for (const [k, h] of this.held) {
      if (h.owner !== owner) continue;
      this.held.delete(k);
      h.close();
    }
  }

  releaseAll(): void {
    for (const h of this.held.values()) h.close();
    this.held.clear();
  }

  private async reserveOne(owner: string, ownerName: string, r: PortRequest): Promise<PublishedPort> {
    if (r.hostPortLo === 0) return this.reserveRandom(owner, ownerName, r);
    let last: unknown;
    for (let port = r.hostPortLo; port <= r.hostPortHi; port++) {
      try {
        return await this.claim(owner, ownerName, r, port);
      } catch (e) {
        last = e;
        if (!(e instanceof ConflictError)) throw e;
      }
    }
    throw last;
  }

  private async reserveRandom(owner: string, ownerName: string, r: PortRequest): Promise<PublishedPort> {
    const [lo, hi] = ephemeralRange();
    const count = hi - lo + 1;
    const start = Math.floor(Math.random() * count);
    for (let i = 0; i < Math.min(count, 512); i++) {
      const port = lo + ((start + i) % count);
      if (this.holder(r.proto, r.hostIp, port)) continue;
      try {
        return await this.claim(owner, ownerName, r, port);
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
      }
    }
    throw new ConflictError(`no free host port for ${r.containerPort}/${r.proto} in ${lo}-${hi}`, { hint: 'publish on a fixed port (-p HOSTPORT:PORT), or free some ports' });
  }

  private async claim(owner: string, ownerName: string, r: PortRequest, port: number): Promise<PublishedPort> {
    const h = this.holder(r.proto, r.hostIp, port);
    if (h) {
      throw new ConflictError(`port ${port}/${r.proto} is published by container ${h.ownerName}`, {
        hint: `pick another host port, or stop ${h.ownerName} first (berth port ${h.ownerName} shows its ports)`,
      });
    }
    const published: PublishedPort = { proto: r.proto, hostIp: r.hostIp, hostPort: port, containerPort: r.containerPort };
    const key = this.key(r.proto, r.hostIp, port);
    const entry: Held = { owner, ownerName, port: published, close: () => undefined };
    this.held.set(key, entry); // synchronously, before any await: one winner per port
    try {
      entry.close = await (r.proto === 'tcp' ? bindTcp : bindUdp)(r.hostIp, port);
    } catch (e) {
      this.held.delete(key);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') {
        throw new ConflictError(`port ${port}/${r.proto} on ${r.hostIp} is in use by another process`, {
          hint: `pick another host port; \`ss -ltnup 'sport = :${port}'\` shows who holds it`,
        });
      }
      if (code === 'EADDRNOTAVAIL') {
        throw new InvalidArgumentError(`${r.hostIp} is not an address of this host`, { hint: 'publish on 0.0.0.0, 127.0.0.1 or one of the addresses `ip addr` lists' });
      }
      if (code === 'EACCES') throw new FailedPreconditionError(`not allowed to bind port ${port}`, { hint: 'run berthd as root' });
      throw e;
    }
    if (this.held.get(key) !== entry) {
      entry.close(); // released while binding (the container went away)
      throw new ConflictError(`the reservation of port ${port} was cancelled`, { hint: 'try again' });
    }
    return published;
  }
}
