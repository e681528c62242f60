import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { IptablesExecutor } from '../../src/network/iptables';
import { ownChains } from '../../src/network/rules';
import { ownsBridge, ownsChains } from '../../src/network/claims';
import { Transport } from '../../src/client/transport';
import { RemoteImageService } from '../../src/client/images';
import { RemoteContainerService } from '../../src/client/containers';
import { RemoteVolumeService } from '../../src/client/volumes';
import { mountsUnder } from './mounts';
import { runCommand } from './proc';

export const exec = promisify(execFile);
export const CLI = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');
/** The `berth` command users run (package.json bin): a shell wrapper around CLI. */
export const BERTH = path.join(__dirname, '..', '..', '..', 'src', 'cli', 'berth');

/**
 * A test daemon's own network: bridge `berth-<6 hex>`, chains suffixed `-T<6 hex>`, and a
 * /24 in 10.200-249.x.0 (from a hash of its root), so daemons side by side never share
 * a bridge, a subnet or a rule.
 */
export function testNetwork(root: string): string[] {
  const h = createHash('sha256').update(root).digest();
  const tag = h.subarray(0, 3).toString('hex');
  return ['--bridge', `berth-${tag}`, '--iptables-suffix', `-T${tag}`, '--subnet', `10.${200 + (h[3] % 50)}.${h[4]}.0/24`];
}

/**
 * A real berthd in its own process, with its own data root and socket, so tests run in
 * parallel and never touch a user's berth. `stop()` ends it (SIGTERM) and removes its root;
 * `kill()` SIGKILLs it (crash tests), `restart()` starts a new one on the same root.
 */
export class TestDaemon {
  child?: ChildProcess;
  readonly socket: string;
  readonly host: string;
  transport: Transport;
  images: RemoteImageService;
  containers: RemoteContainerService;
  volumes: RemoteVolumeService;
  private exit?: Promise<number | null>;
  private inherit: Array<number | 'ignore'> = [];

  private constructor(
    readonly root: string,
    /** Extra `berth daemon` arguments (e.g. `--volume-driver dir`), kept for `restart()`. */
    readonly args: string[] = [],
  ) {
    this.socket = path.join(root, 'run', 'berth.sock');
    this.host = 'unix://' + this.socket;
    this.transport = new Transport(this.socket);
    this.images = new RemoteImageService(this.transport);
    this.containers = new RemoteContainerService(this.transport);
    this.volumes = new RemoteVolumeService(this.transport);
  }

  /**
   * `root`: a data root the test made (default: a new temp dir).
   * `derivedNetwork`: start it without --bridge/--subnet/--iptables-suffix, as a user's
   * second daemon on another root would be (it then takes the bridge derived from its root).
   */
  /** `inherit`: descriptors the daemon gets at fd 3 and up, as a careless caller would pass them (kept for `restart()`). */
  static async start(opts: { args?: string[]; root?: string; derivedNetwork?: boolean; env?: NodeJS.ProcessEnv; inherit?: Array<number | 'ignore'> } = {}): Promise<TestDaemon> {
    const root = opts.root ?? (await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-t-')));
    const args = [...(opts.args ?? [])];
    if (!args.includes('--bridge') && !opts.derivedNetwork) args.push(...testNetwork(root));
    const d = new TestDaemon(root, args);
    d.inherit = opts.inherit ?? [];
    await d.launch(opts.env);
    return d;
  }

  /** Environment for the real docker CLI and for `berth` run as a subprocess. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: this.host, BERTH_HOST: this.host, BERTH_ROOT: this.root, DOCKER_CONFIG: path.join(this.root, 'docker-config') };
  }

  get dataRoot(): string {
    return this.root;
  }

  /** `env`: extra environment for this start only (e.g. BERTH_FAULT for a crash test). */
  async launch(env?: NodeJS.ProcessEnv): Promise<void> {
    const log = fs.openSync(path.join(this.root, 'test-daemon.log'), 'a');
    const child = spawn(process.execPath, [CLI, 'daemon', '--root', this.root, '--host', this.host, ...this.args], {
      stdio: ['ignore', log, log, ...this.inherit],
      env: env ? { ...process.env, ...env } : process.env,
    });
    fs.closeSync(log);
    this.child = child;
    this.exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    // If the test worker dies (a timeout, a crash) the daemon must not outlive it.
    const reap = () => child.kill('SIGTERM');
    process.once('exit', reap);
    child.once('exit', () => process.off('exit', reap));
    // Generous: on a loaded 2-core machine a start can take many seconds (several daemons
    // start at once, and their network claims are made one at a time).
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (await this.transport.ping()) return;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 30));
    }
    // A daemon that did not answer in time must not outlive the test (SIGTERM lets it undo its network).
    // Its bridge and chains may be made already: give it time to undo them on a loaded
    // machine (after 5 s, as before, a SIGKILL left them behind for the leak check).
    child.kill('SIGTERM');
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, 30_000))]);
    child.kill('SIGKILL');
    throw new Error(`test daemon did not start in 60 s:\n${this.log()}`);
  }

  log(): string {
    try {
      return fs.readFileSync(path.join(this.root, 'test-daemon.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGKILL: the crash a power cut or OOM kill would be. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exit;
  }

  async terminate(): Promise<number | null> {
    this.child?.kill('SIGTERM');
    return this.exit ?? null;
  }

  /** Start again on the same root; `env` is extra environment for this start only. */
  async restart(env?: NodeJS.ProcessEnv): Promise<void> {
    await this.launch(env);
  }

  /** Run the berth CLI against this daemon. */
  berth(args: string[], opts: { input?: Buffer | string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCommand(BERTH, args, { env: this.env, input: opts.input });
  }

  /** Run the real docker CLI against this daemon. */
  docker(args: string[], opts: { input?: Buffer | string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCommand('docker', args, { env: this.env, input: opts.input });
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      // Containers outlive berthd by design (live-restore): a test's must go first.
      const all = await this.containers.list({ all: true }).catch(() => []);
      await Promise.all(all.map((c) => this.containers.remove(c.Id, { force: true, volumes: true }).catch(() => undefined)));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
      await this.exit;
      clearTimeout(t);
    }
    await unmountUnder(this.root);
    await this.removeNetwork();
    await fs.promises.rm(this.root, { recursive: true, force: true });
  }

  /**
   * The daemon removes its chains and bridge when it stops with nothing running; a test
   * that SIGKILLed it and never restarted it would leave them: remove them here, but only
   * while this root still claims them (no-ops when the daemon did it).
   */
  private async removeNetwork(): Promise<void> {
    let rec: { bridge?: string; suffix?: string } = {};
    try {
      rec = JSON.parse(fs.readFileSync(path.join(this.root, 'network.json'), 'utf8'));
    } catch {
      return; // it never set its network up
    }
    if (rec.suffix !== undefined && (await ownsChains(rec.suffix, this.root))) await new IptablesExecutor().remove(ownChains(rec.suffix)).catch(() => undefined);
    if (rec.bridge && ownsBridge(rec.bridge, this.root)) await exec('ip', ['link', 'del', 'dev', rec.bridge]).catch(() => undefined);
    // Its user-defined networks' bridges (br-…), claimed by this root the same way.
    for (const name of fs.readdirSync('/sys/class/net')) {
      if (name.startsWith('br-') && ownsBridge(name, this.root)) await exec('ip', ['link', 'del', 'dev', name]).catch(() => undefined);
    }
  }
}

export async function unmountUnder(dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  for (const m of mountsUnder(dir)) await exec('umount', [m]).catch(() => exec('umount', ['-l', m]).catch(() => undefined));
}

/** Every file under dir (relative paths), for "nothing left behind" checks. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      if (fs.lstatSync(p).isDirectory()) walk(p, r);
    }
  };
  walk(dir, '');
  return out;
}
