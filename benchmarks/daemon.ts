import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Transport } from '../src/client/transport';
import { sh } from './lib';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
/** What `berth` runs: the CLI bundled by `npm run build` (.ci/bundle-cli.js). */
export const BERTH_CLI = path.join(__dirname, '..', 'src', 'cli', 'berth.js');

/**
 * A benchmark daemon's own network, from a hash of its root: bridge `berthb-<6 hex>`, chains
 * suffixed `-B<6 hex>`, a /24 in 10.150-199.x.0 (test daemons use 10.200-249, see
 * test/helpers/daemon.ts testNetwork()), so a benchmark never touches a user's berth0.
 */
export function benchDaemonNetwork(root: string): { bridge: string; suffix: string; subnet: string } {
  const h = createHash('sha256').update(root).digest();
  const tag = h.subarray(0, 3).toString('hex');
  return { bridge: `berthb-${tag}`, suffix: `-B${tag}`, subnet: `10.${150 + (h[3] % 50)}.${h[4]}.0/24` };
}

/** A berthd of the benchmark's own, on its own root, socket, bridge, subnet and chains. */
export class BenchDaemon {
  private constructor(
    readonly root: string,
    readonly socket: string,
    readonly network: { bridge: string; suffix: string; subnet: string },
    private child: ChildProcess,
    /** The daemon's stdout and stderr. */
    readonly logFile: string,
  ) {}

  /**
   * `nodeArgs` go to Node before the CLI (e.g. `--inspect=127.0.0.1:0` for the soak's GC);
   * `waitMs`: how long it may take to answer (a restart adopting many containers takes longer).
   */
  static async start(work: string, opts: { nodeArgs?: string[]; waitMs?: number } = {}): Promise<BenchDaemon> {
    const waitMs = opts.waitMs ?? 20_000;
    const root = path.join(work, 'root');
    const socket = path.join(root, 'run', 'b.sock');
    fs.mkdirSync(root, { recursive: true });
    const net = benchDaemonNetwork(root);
    const logFile = path.join(work, 'daemon.log');
    const log = fs.openSync(logFile, 'a');
    const args = ['daemon', '--root', root, '--host', 'unix://' + socket, '--bridge', net.bridge, '--subnet', net.subnet, '--iptables-suffix', net.suffix];
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, ...args], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const t = new Transport(socket);
    for (let i = 0; i < waitMs / 50 && !(await t.ping()); i++) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!(await t.ping())) {
      child.kill('SIGTERM');
      throw new Error(`benchmark daemon did not start:\n${fs.readFileSync(logFile, 'utf8')}`);
    }
    return new BenchDaemon(root, socket, net, child, logFile);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  berth(args: string[]): string {
    return sh(process.execPath, [BERTH_CLI, '--', '--no-autostart', '-H', 'unix://' + this.socket, ...args]);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.on('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}
