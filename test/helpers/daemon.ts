import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { Transport } from '../../src/client/transport';
import { RemoteImageService } from '../../src/client/images';
import { RemoteContainerService } from '../../src/client/containers';
import { RemoteVolumeService } from '../../src/client/volumes';
import { mountsUnder } from './mounts';
import { runCommand } from './proc';
import { cleanLeftovers, containerLeftovers, leftoversOf, LeakError, type Leftover } from './leaks';
import { eventually } from './eventually';
import { loadImages, type CachedImage } from './images';

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
  /** Gives back this daemon's slot (see `daemonSlots`); once. */
  private release: () => void = () => undefined;
  /** Mounts under the root before the daemon started (a tmpfs the test made its root). */
  private ownMounts = new Set<string>();

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
   * `inherit`: descriptors the daemon gets at fd 3 and up, as a careless caller would pass them (kept for `restart()`).
   * `images`: the run's prebuilt images loaded into the new root (test/helpers/images.ts;
   * made once per run). Default busybox, which nearly every test runs; `[]` for a test of
   * busybox's first use on a fresh root, or one that asserts the root holds no image.
   */
  static async start(opts: { args?: string[]; root?: string; derivedNetwork?: boolean; env?: NodeJS.ProcessEnv; inherit?: Array<number | 'ignore'>; images?: CachedImage[] } = {}): Promise<TestDaemon> {
    const release = await daemonSlots.acquire();
    let made: string | undefined;
    let d: TestDaemon | undefined;
    try {
      if (!opts.root) made = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-t-'));
      const root = opts.root ?? made!;
      const args = [...(opts.args ?? [])];
      if (!args.includes('--bridge') && !opts.derivedNetwork) args.push(...testNetwork(root));
      d = new TestDaemon(root, args);
      d.inherit = opts.inherit ?? [];
      d.release = release;
      // A root the test prepared may be a mount point (a tmpfs): the test's, not a leak.
      d.ownMounts = new Set(mountsUnder(root));
      await d.launch(opts.env);
      await loadImages(d, ...(opts.images ?? ['busybox']));
      return d;
    } catch (e) {
      try {
        if (d) await d.discardFailedStart(made !== undefined, e as Error);
        else if (made) await fs.promises.rm(made, { recursive: true, force: true });
      } finally {
        release();
      }
      throw e;
    }
  }

  /**
   * After a start that failed (launch ended its berthd): remove what the failed launch left
   * on the host (a bridge, chains, a mount it made) and, when `madeRoot`, the temp root
   * `start` made — a root the test passed in is the test's. What was left is added to the
   * start's error, so a failed start says what it had to clean up.
   */
  private async discardFailedStart(madeRoot: boolean, e: Error): Promise<void> {
    if (this.running) this.child!.kill('SIGKILL');
    await this.exit;
    const left = this.leftovers();
    const uncleaned = left.length ? await cleanLeftovers({ root: this.root, ...this.ownNetwork() }, left) : [];
    if (madeRoot) await fs.promises.rm(this.root, { recursive: true, force: true }).catch((err: Error) => uncleaned.push(`removing the root failed: ${err.message}`));
    if (left.length || uncleaned.length) e.message += `\n${new LeakError('the failed start', left, uncleaned).message}`;
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
    const why = child.exitCode !== null ? `exited with code ${child.exitCode} before it answered` : 'did not answer in 60 s';
    throw new Error(`test daemon on ${this.root} ${why}:\n${this.log()}`);
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

  private get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What this daemon left on the host (test/helpers/leaks.ts), the test's own mounts aside. */
  leftovers(): Leftover[] {
    const net = this.ownNetwork();
    return leftoversOf({ root: this.root, bridge: net.bridge, suffix: net.suffix }).filter((l) => !(l.kind === 'mount' && this.ownMounts.has(l.what)));
  }

  /**
   * End the daemon and remove its root, then fail loudly if anything of it is left: it
   * removes every container first (containers outlive berthd by design: live-restore), ends
   * berthd with SIGTERM, and scans the host for what belongs to this root (mounts,
   * processes, cgroups, bridge, chains, veths, loop devices). A daemon the test killed and
   * did not restart is started once more first, so its own recovery cleans up what the
   * crash left. Whatever is still left is removed here (so one leak does not cascade) and
   * reported: the error fails the test (or, from an after hook, the file) that owned it.
   */
  async stop(): Promise<void> {
    const problems: string[] = [];
    try {
      if (!this.running && this.child && fs.existsSync(this.root) && this.leftovers().length) {
        // Killed (a crash test) with things still up: the next start must clean them.
        await this.launch().catch((e: Error) => problems.push(`berthd could not start again to clean up after the crash: ${e.message.split('\n')[0]}`));
      }
      if (this.running) {
        const all = await this.containers.list({ all: true }).catch((e: Error) => {
          problems.push(`listing containers failed: ${e.message}`);
          return [];
        });
        await Promise.all(
          all.map((c) =>
            this.containers.remove(c.Id, { force: true, volumes: true }).catch((e: Error & { code?: string }) => {
              if (e.code !== 'NOT_FOUND') problems.push(`removing container ${c.Names?.[0] ?? c.Id} failed: ${e.code ?? ''} ${e.message}`);
            }),
          ),
        );
        const child = this.child!;
        child.kill('SIGTERM');
        let killed = false;
        const t = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, 90_000);
        await this.exit;
        clearTimeout(t);
        if (killed) problems.push('berthd did not exit within 90 s of SIGTERM (it was SIGKILLed)');
      }
      const left = fs.existsSync(this.root) || this.child ? this.leftovers() : [];
      const tail = left.length || problems.length ? this.log().split('\n').slice(-16).join('\n  ') : '';
      const uncleaned = left.length ? await cleanLeftovers({ root: this.root, ...this.ownNetwork() }, left) : [];
      for (const m of this.ownMounts) await exec('umount', [m]).catch(() => undefined);
      await fs.promises.rm(this.root, { recursive: true, force: true }).catch((e: Error) => problems.push(`removing the root failed: ${e.message}`));
      if (left.length || problems.length) {
        throw new LeakError(`test daemon ${this.root}`, left, uncleaned, problems, `\nberthd log (last lines):\n  ${tail}`);
      }
    } finally {
      this.release();
      this.release = () => undefined;
    }
  }

  /** The bridge and chain suffix this daemon was given (or recorded in network.json). */
  private ownNetwork(): { bridge?: string; suffix?: string } {
    const get = (flag: string) => (this.args.includes(flag) ? this.args[this.args.indexOf(flag) + 1] : undefined);
    let rec: { bridge?: string; suffix?: string } = {};
    try {
      rec = JSON.parse(fs.readFileSync(path.join(this.root, 'network.json'), 'utf8'));
    } catch {
      // it never set its network up, or the root is gone
    }
    return { bridge: get('--bridge') ?? rec.bridge, suffix: get('--iptables-suffix') ?? rec.suffix };
  }
}

/** One test's share of a daemon the file's tests share (`useDaemon`). */
export interface DaemonShare {
  d: TestDaemon;
  /** A tag unique to this test (8 hex). */
  tag: string;
  /** `<base>-<tag>`: a container, volume or image name no other test of the file uses. Its containers are this test's. */
  name(base: string): string;
  /** A container (id or name) this test made under a name of its own: removed and checked like the named ones. */
  track(ref: string): string;
}

/**
 * The per-test half of the leak policy, for tests that share one daemon: the containers a
 * test made (named with `share.name()`, or `track`ed) are removed in its teardown, and then
 * each must have left nothing on the host (mounts under its directory, its cgroups, a
 * monitor or runc naming it, its veths, its runc state): the test that leaked fails, by
 * name. The daemon's own `stop()` (in the file's after hook) is the file-wide net.
 */
export function useDaemon(t: ExecutionContext, d: TestDaemon): DaemonShare {
  const tag = randomBytes(4).toString('hex');
  const refs = new Set<string>();
  t.teardown(async () => {
    const problems: string[] = [];
    const named = await d.containers.list({ all: true, filters: { name: [`-${tag}`] } }).catch((e: Error) => {
      problems.push(`listing the test's containers failed: ${e.message}`);
      return [];
    });
    const ids = new Set(named.map((c) => c.Id));
    for (const ref of refs) {
      const id = /^[0-9a-f]{64}$/.test(ref) ? ref : await d.containers.inspect(ref).then((i) => i.Id, () => undefined);
      if (id) ids.add(id);
    }
    await Promise.all(
      [...ids].map((id) =>
        d.containers.remove(id, { force: true, volumes: true }).catch((e: Error & { code?: string }) => {
          if (e.code !== 'NOT_FOUND') problems.push(`removing container ${id.slice(0, 12)} failed: ${e.code ?? ''} ${e.message}`);
        }),
      ),
    );
    // A removed container's monitor exits and its cgroup goes right after the remove answers.
    const left = await eventually(() => {
      const found = [...ids].flatMap((id) => containerLeftovers(d.root, id).map((l) => ({ ...l, what: `${l.what} (container ${id.slice(0, 12)})` })));
      return found.length === 0 ? [] : false;
    }, { timeout: 20_000, message: "the test's removed containers to leave nothing behind" }).catch(() => [...ids].flatMap((id) => containerLeftovers(d.root, id)));
    if (left.length || problems.length) throw new LeakError(`test "${t.title}" on daemon ${d.root}`, left, null, problems);
  });
  return {
    d,
    tag,
    name: (base) => `${base}-${tag}`,
    track(ref) {
      refs.add(ref);
      return ref;
    },
  };
}

/**
 * At most `BERTH_TEST_MAX_DAEMONS` (default 3) live test daemons per ava worker (one test
 * file): a file whose tests all start a daemon at once waits here instead of starting ten
 * on two cores. A slot is held from start to stop (kill and restart keep it). A test that
 * holds a daemon and starts another while every slot is held by such tests would wait for
 * ever: a waiter proceeds over the cap after 120 s, and says so.
 */
class Slots {
  private used = 0;
  private waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}

  async acquire(): Promise<() => void> {
    if (this.used < this.max) this.used++;
    else {
      // A releaser hands its slot straight to the first waiter (true); a timeout takes one more (false).
      const handed = await new Promise<boolean>((resolve) => {
        const wake = () => resolve(true);
        this.waiting.push(wake);
        setTimeout(() => {
          const i = this.waiting.indexOf(wake);
          if (i < 0) return;
          this.waiting.splice(i, 1);
          resolve(false);
        }, 120_000).unref();
      });
      if (!handed) {
        this.used++;
        process.stderr.write(`test daemons: waited 120 s for one of ${this.max} slots; starting one more over the cap\n`);
      }
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.used--;
    };
  }
}

export const daemonSlots = new Slots(Number(process.env.BERTH_TEST_MAX_DAEMONS) || 3);

/**
 * Unmount what a test mounted itself under `dir` (deepest first), e.g. the small host
 * filesystem a test gives a daemon. Never lazily: a busy mount fails, naming it.
 */
export async function unmountUnder(dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  for (const m of mountsUnder(dir)) await exec('umount', [m]);
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
