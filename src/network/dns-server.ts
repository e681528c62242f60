import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as packet from 'dns-packet';

/**
 * The embedded DNS server of user-defined networks (Docker's 127.0.0.11). berthd listens
 * on UDP and TCP port 53 of each user-defined network's gateway; inside a container,
 * 127.0.0.11:53 is DNATed there (container-dns.ts).
 *
 * It answers, for the container that asks, the names of containers on the networks it
 * shares with them: container names, network aliases and short ids (A), and their
 * addresses back to names (PTR), with only addresses on a shared network; and the
 * aliases of its own endpoint links (`--link target:alias` on a user-defined network),
 * which only it resolves. The table (`DnsIndex`: maps by address and by name) is built
 * from the daemon's records (`members`) and built again whenever `version` says they
 * changed, checked at every query: a start, stop, connect, disconnect or rename shows at
 * once, and a query costs a few map lookups, however many containers there are. A known name of another type gets an empty answer;
 * an unknown single-label name NXDOMAIN; everything else goes to the asker's own --dns
 * servers if it has any, else to the host's resolvers (berthd runs on the host, so a
 * loopback stub such as 127.0.0.53, or a loopback --dns, is used as it is).
 * Packets are parsed and written by dns-packet.
 */

export interface DnsEndpoint {
  /** The network's id. */
  net: string;
  ip: string;
  aliases: string[];
  /** The endpoint's links (EndpointConfig.Links): `alias` names `target` on this network, for this container's own questions only. */
  links?: Array<{ target: string; alias: string }>;
}

export interface DnsMember {
  id: string;
  name: string;
  /** Only running containers are answered for; any container may ask (one just starting is not running yet). */
  running: boolean;
  endpoints: DnsEndpoint[];
  /** Its own DNS servers (--dns): what it asks that is not ours goes there instead of the host's, as in Docker. */
  upstreams?: string[];
}

const TTL = 600;

/** The members, indexed for answering: who asks (by address), names and addresses of running ones. */
export class DnsIndex {
  /** Every member's addresses (running or not: one just starting may ask). */
  private readonly askers = new Map<string, DnsMember>();
  /** Names, short ids and aliases (lower case) of running members: their addresses, with the network of each. */
  private readonly names = new Map<string, Array<{ net: string; ip: string }>>();
  /** Addresses of running members: their names, with the network. */
  private readonly owners = new Map<string, Array<{ net: string; name: string }>>();
  private readonly running: DnsMember[];

  constructor(members: DnsMember[]) {
    this.running = members.filter((m) => m.running);
    for (const m of members) for (const e of m.endpoints) if (!this.askers.has(e.ip)) this.askers.set(e.ip, m);
    for (const m of this.running) {
      for (const e of m.endpoints) {
        for (const key of new Set([m.name.toLowerCase(), m.id.slice(0, 12), ...e.aliases.map((a) => a.toLowerCase())])) push(this.names, key, { net: e.net, ip: e.ip });
        push(this.owners, e.ip, { net: e.net, name: m.name });
      }
    }
  }

  asker(ip: string): DnsMember | undefined {
    return this.askers.get(ip);
  }

  /** The addresses `name` has on the networks in `shared` (none: not a name of ours there). */
  lookup(name: string, shared: Set<string>): string[] {
    return (this.names.get(name) ?? []).filter((e) => shared.has(e.net)).map((e) => e.ip);
  }

  /** The name of the running member at `ip` on a network in `shared`. */
  owner(ip: string, shared: Set<string>): string | undefined {
    return this.owners.get(ip)?.find((o) => shared.has(o.net))?.name;
  }

  /** A link's target (name, id, or an id prefix of 12 or more), if it runs. */
  target(ref: string): DnsMember | undefined {
    const t = ref.toLowerCase();
    return this.running.find((m) => m.name.toLowerCase() === t || m.id === t || (t.length >= 12 && m.id.startsWith(t)));
  }
}

function push<V>(map: Map<string, V[]>, key: string, v: V): void {
  const list = map.get(key);
  if (list) list.push(v);
  else map.set(key, [v]);
}

export function hostResolvers(file = '/etc/resolv.conf'): string[] {
  try {
    const out = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
      .filter((x): x is string => !!x);
    return out.length ? out : ['8.8.8.8'];
  } catch {
    return ['8.8.8.8'];
  }
}

function ptrToIp(name: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(name);
  return m ? `${m[4]}.${m[3]}.${m[2]}.${m[1]}` : undefined;
}

interface Listener {
  udp: dgram.Socket;
  tcp: net.Server;
}

export class EmbeddedDns {
  private readonly listeners = new Map<string, Listener>();
  private cached?: { version: unknown; index: DnsIndex };

  constructor(
    private readonly members: () => DnsMember[],
    /** Changes whenever the members may have (compared with ===); without it the index is built at every query. */
    private readonly version: (() => unknown) | undefined,
    /** Is this address on one of our networks (for PTR: ours to answer, not upstream's)? */
    private readonly ours: (ip: string) => boolean,
    private readonly upstreams: string[] = hostResolvers(),
    private readonly log: (m: string) => void = () => undefined,
  ) {}

  /** Serve on `gateway`:53 (UDP and TCP). */
  async listen(gateway: string): Promise<void> {
    if (this.listeners.has(gateway)) return;
    const udp = dgram.createSocket({ type: 'udp4' });
    udp.on('message', (msg, rinfo) => {
      this.answer(msg, rinfo.address, false).then(
        (out) => out && udp.send(out, rinfo.port, rinfo.address),
        (e) => this.log(`dns: ${(e as Error).message}`),
      );
    });
    udp.on('error', (e) => this.log(`dns ${gateway}: ${e.message}`));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: gateway, port: 53, exclusive: true }, () => (udp.off('error', reject), resolve()));
    });
    const tcp = net.createServer((sock) => this.serveTcp(sock));
    tcp.on('error', (e) => this.log(`dns ${gateway}: ${e.message}`));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: gateway, port: 53, exclusive: true }, () => (tcp.off('error', reject), resolve()));
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    udp.unref();
    tcp.unref();
    this.listeners.set(gateway, { udp, tcp });
  }

  close(gateway: string): void {
    const l = this.listeners.get(gateway);
    if (!l) return;
    this.listeners.delete(gateway);
    l.udp.close();
    l.tcp.close();
  }

  closeAll(): void {
    for (const g of [...this.listeners.keys()]) this.close(g);
  }

  private serveTcp(sock: net.Socket): void {
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.setTimeout(10_000, () => sock.destroy());
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.answer(msg, sock.remoteAddress?.replace(/^::ffff:/, '') ?? '', true).then(
          (out) => {
            if (!out || sock.destroyed) return;
            const head = Buffer.alloc(2);
            head.writeUInt16BE(out.length);
            sock.write(Buffer.concat([head, out]));
          },
          () => sock.destroy(),
        );
      }
    });
  }

  /** The answer to one query from `from` (undefined: drop it). */
  async answer(msg: Buffer, from: string, tcp: boolean): Promise<Buffer | undefined> {
    let q: packet.Packet;
    try {
      q = packet.decode(msg);
    } catch {
      return undefined; // not DNS: nothing to say
    }
    const question = q.questions?.[0];
    if (!question) return undefined;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const index = this.index();
    const asker = index.asker(from);
    const shared = new Set(asker?.endpoints.map((e) => e.net) ?? []);
    const reply = (rcode: 'NOERROR' | 'NXDOMAIN', answers: packet.Answer[]) =>
      packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : 0), questions: q.questions, answers });

    if (question.type === 'PTR') {
      const ip = ptrToIp(name);
      if (ip && this.ours(ip)) {
        const owner = index.owner(ip, shared);
        if (!owner) return reply('NXDOMAIN', []);
        return reply('NOERROR', [{ type: 'PTR', name: question.name, ttl: TTL, class: 'IN', data: owner }]);
      }
      return this.forward(msg, tcp, asker?.upstreams);
    }
    const ips: string[] = [];
    let known = false;
    // The asker's own link aliases first: Docker resolves them for the linking container alone.
    for (const e of asker?.endpoints ?? []) {
      for (const l of e.links ?? []) {
        if (l.alias.toLowerCase() !== name) continue;
        const ip = index.target(l.target)?.endpoints.find((x) => x.net === e.net)?.ip;
        if (ip) {
          known = true;
          if (!ips.includes(ip)) ips.push(ip);
        }
      }
    }
    for (const ip of index.lookup(name, shared)) {
      known = true;
      if (!ips.includes(ip)) ips.push(ip);
    }
    if (known) {
      const answers: packet.Answer[] = question.type === 'A' ? ips.map((ip) => ({ type: 'A' as const, name: question.name, ttl: TTL, class: 'IN' as const, data: ip })) : [];
      return reply('NOERROR', answers);
    }
    if (asker && !name.includes('.')) return reply('NXDOMAIN', []);
    return this.forward(msg, tcp, asker?.upstreams);
  }

  /** The index of the members now: the cached one while `version` is unchanged. */
  private index(): DnsIndex {
    if (!this.version) return new DnsIndex(this.members());
    const version = this.version();
    if (!this.cached || this.cached.version !== version) this.cached = { version, index: new DnsIndex(this.members()) };
    return this.cached.index;
  }

  /** Ask the asker's own servers if it has any, else the host's, in order, and relay the first answer as it came. */
  private async forward(msg: Buffer, tcp: boolean, own: string[] | undefined): Promise<Buffer | undefined> {
    for (const up of own?.length ? own : this.upstreams) {
      const out = await (tcp ? askTcp(up, msg) : askUdp(up, msg)).catch(() => undefined);
      if (out) return out;
    }
    const q = packet.decode(msg);
    return packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | 2 /* SERVFAIL */, questions: q.questions, answers: [] });
  }
}

function askUdp(server: string, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => (s.close(), reject(new Error('timeout'))), 3000);
    s.on('error', (e) => (clearTimeout(timer), s.close(), reject(e)));
    s.on('message', (out) => {
      clearTimeout(timer);
      s.close();
      resolve(out);
    });
    s.send(msg, 53, server);
  });
}

function askTcp(server: string, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: server, port: 53 });
    let buf = Buffer.alloc(0);
    s.setTimeout(3000, () => (s.destroy(), reject(new Error('timeout'))));
    s.on('error', reject);
    s.on('connect', () => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(msg.length);
      s.write(Buffer.concat([head, msg]));
    });
    s.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
  });
}
