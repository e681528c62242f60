/**
 * The main job's last act (issue 14): a volume shared between two berths through an OCI
 * registry. It starts a registry of its own (Debian's docker-registry on 127.0.0.1, a free
 * port, its config and storage in a temporary directory), pushes the Redis volume, changes
 * the data, pushes again (only the change goes), then starts a second berthd on a second
 * data root (its own socket, bridge, subnet and iptables chain suffix, so it never meets
 * the first one's objects), pulls the volume there, runs Redis on it and reads the data.
 * Everything it started, it stops, and what it made it removes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, UnavailableError } from '../../../volumes/shared/errors';
import { tool } from '../../../volumes/shared/host-tool';
import { Transport } from '../../client/transport';
import { RemoteImageService } from '../../client/images';
import { RemoteContainerService } from '../../client/containers';
import { RemoteVolumeService } from '../../client/volumes';
import { RemoteVolumeTransfers } from '../../client/volume-transfers';
import type { CliContext } from '../context';
import { humanSize } from '../format';

const REGISTRY = '/usr/bin/docker-registry';

export interface RedisDemo {
  volume: string;
  /** Start Redis as container `name` on volume `volume` through `ctx`; its published port. */
  start(ctx: CliContext, name: string, volume: string): Promise<string>;
  /** Run redis-cli against `port`, printing the command and its answer; the answer. */
  redis(port: string, args: string[]): Promise<string>;
}

export async function shareThroughARegistry(ctx: CliContext, port: string, demo: RedisDemo): Promise<void> {
  say('\n# The volume shared through an OCI registry, to a second berth');
  const reg = await LocalRegistry.start();
  let second: SecondDaemon | undefined;
  try {
    const ref = `${reg.host}/berth-demo/${demo.volume}:latest`;
    say(`$ docker-registry serve    # on ${reg.host}, storage in ${reg.dir}`);
    const transfers = new RemoteVolumeTransfers(ctx.transport);
    say(`$ berth volume push ${demo.volume} ${ref}`);
    const first = await transfers.push(demo.volume, undefined, ref);
    say(`  pushed snapshot ${first.snapshot}: ${first.sent} bytes sent (${humanSize(first.sent)}), ${first.layers} layer(s) on the chain`);
    await demo.redis(port, ['set', 'greeting', 'changed, then pushed again']);
    await demo.redis(port, ['rpush', 'log', 'second push']);
    say(`$ berth volume push ${demo.volume} ${ref}`);
    const again = await transfers.push(demo.volume, undefined, ref);
    say(`  pushed snapshot ${again.snapshot}: ${again.sent} bytes sent (${humanSize(again.sent)}): only what changed, ${again.layers} layer(s) on the chain`);

    second = await SecondDaemon.start();
    const ctx2 = second.context();
    say(`\n$ berthd --root ${second.root} --host unix://${second.socket} ${second.network.join(' ')} &    # a second berth`);
    say(`$ berth -H unix://${second.socket} volume pull ${ref} ${demo.volume}`);
    const pulled = await new RemoteVolumeTransfers(ctx2.transport).pull(ref, demo.volume);
    say(`  pulled ${pulled.volume}: snapshots ${pulled.snapshots.join(', ')}, ${pulled.fetched} bytes fetched (${humanSize(pulled.fetched)})`);
    say(`$ berth -H unix://${second.socket} image vendor redis /usr/bin/redis-server /usr/bin/redis-cli`);
    await ctx2.images.vendor({ ref: 'redis', binaries: ['/usr/bin/redis-server', '/usr/bin/redis-cli'] });
    const port2 = await demo.start(ctx2, 'redis-pulled', demo.volume);
    const got = await demo.redis(port2, ['get', 'greeting']);
    if (got !== 'changed, then pushed again') throw new UnavailableError(`Redis on the second berth read ${JSON.stringify(got)}, not the pushed data`, { hint: `see ${second.log}` });
    await demo.redis(port2, ['lrange', 'log', '0', '-1']);
    say('(the second berth read the data pushed by the first; it is stopped and removed now)');
  } finally {
    await second?.stop();
    await reg.stop();
  }
}

/** Debian's docker-registry (distribution 2.8) on 127.0.0.1, storage in a temporary directory. */
class LocalRegistry {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly child: ChildProcess,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(): Promise<LocalRegistry> {
    if (!fs.existsSync(REGISTRY)) throw new FailedPreconditionError('docker-registry is not installed', { hint: 'apt-get install docker-registry (bash .ci/setup does)' });
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-mainjob-registry-'));
    const port = await freePort();
    const config = ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'data')}`, 'http:', `  addr: 127.0.0.1:${port}`, `  secret: ${randomBytes(16).toString('hex')}`];
    await fs.promises.writeFile(path.join(dir, 'config.yml'), config.join('\n') + '\n');
    const child = spawn(REGISTRY, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    const reg = new LocalRegistry(dir, port, child);
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) break;
      if (await answers(port)) return reg;
      await sleep(100);
    }
    await reg.stop();
    throw new UnavailableError(`docker-registry did not answer on 127.0.0.1:${port}: ${err.trim()}`, { hint: 'check that docker-registry runs: docker-registry serve CONFIG' });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }
    await fs.promises.rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A second berthd on a data root of its own in a temporary directory, with its own socket,
 * bridge (`berth-<6 hex>`), iptables chain suffix and /24, so it shares nothing with the
 * first. `stop()` removes what it made through it, stops it (it takes down its bridge and
 * chains), and removes the root.
 */
class SecondDaemon {
  private constructor(
    readonly root: string,
    readonly socket: string,
    readonly network: string[],
    private readonly child: ChildProcess,
    readonly log: string,
  ) {}

  static async start(): Promise<SecondDaemon> {
    const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-mainjob-second-'));
    const socket = path.join(root, 'berthd.sock');
    const h = createHash('sha256').update(root).digest();
    const tag = h.subarray(0, 3).toString('hex');
    const network = ['--bridge', `berth-${tag}`, '--iptables-suffix', `-M${tag}`, '--subnet', freeSubnet(h)];
    const log = path.join(root, 'berthd.log');
    const fd = fs.openSync(log, 'a', 0o600);
    const main = path.join(__dirname, '..', 'main.js');
    const child = spawn(process.execPath, [main, 'daemon', '--root', path.join(root, 'data'), '--host', `unix://${socket}`, ...network], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const d = new SecondDaemon(root, socket, network, child, log);
    const t = new Transport(socket);
    for (let i = 0; i < 600; i++) {
      if (await t.ping()) return d;
      if (child.exitCode !== null) break;
      await sleep(100);
    }
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
    await d.stop();
    throw new UnavailableError(`the second berthd did not start: ${tail}`, { hint: `see the log above (root ${root})` });
  }

  context(): CliContext {
    const transport = new Transport(this.socket);
    return {
      loc: { socket: this.socket, root: path.join(this.root, 'data') } as CliContext['loc'],
      transport,
      images: new RemoteImageService(transport),
      containers: new RemoteContainerService(transport),
      volumes: new RemoteVolumeService(transport),
    };
  }

  async stop(): Promise<void> {
    const ctx = this.context();
    if (this.child.exitCode === null) {
      for (const c of await ctx.containers.list({ all: true }).catch(() => [])) await ctx.containers.remove(c.Id, { force: true }).catch(() => undefined);
      for (const v of (await ctx.volumes.list().catch(() => undefined))?.Volumes ?? []) await ctx.volumes.remove(v.Name, { force: true }).catch(() => undefined);
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, sleep(60_000)]);
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }
    // The daemon unmounts its pool and detaches its loop device as it stops; anything left under the root goes first.
    const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]?.replace(/\\040/g, ' ') ?? '');
    for (const m of mounts.filter((m) => m.startsWith(this.root + '/')).sort().reverse()) await tool('umount', ['-l', m]).catch(() => undefined);
    await fs.promises.rm(this.root, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A 10.x.y.0/24 in 10.220-249 that no interface of this host is on. */
function freeSubnet(seed: Buffer): string {
  const used = new Set(
    Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a?.family === 'IPv4')
      .map((a) => a!.address.split('.').slice(0, 3).join('.')),
  );
  for (let i = 0; i < 256; i++) {
    const net3 = `10.${220 + ((seed[3] + i) % 30)}.${(seed[4] + i * 7) % 256}`;
    if (!used.has(net3)) return `${net3}.0/24`;
  }
  throw new UnavailableError('no free 10.x.y.0/24 for the second berth', { hint: 'remove unused bridges' });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function say(s: string): void {
  process.stdout.write(s + '\n');
}
