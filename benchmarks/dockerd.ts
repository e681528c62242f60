import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { sh } from './lib';

/**
 * A dockerd of the benchmark's own, the reference for the speed rows: Debian's docker.io
 * (installed here, by the benchmark's set-up, never by .ci/setup or a test), on its own
 * data root, exec root, pidfile and socket, with no bridge and no iptables rules
 * (`--bridge=none --iptables=false --ip-masq=false --ip-forward=false`), so it cannot touch
 * another daemon's bridge, chains or the host's FORWARD policy. Containers on it run with
 * `--network none`; the berth side of each pair does the same.
 */
const TRUST_KEY = '/etc/docker/key.json';

export class BenchDockerd {
  private static keyExisted: boolean | undefined;

  private constructor(
    readonly socket: string,
    readonly dataRoot: string,
    readonly execRoot: string,
    private readonly log: string,
    private readonly dockerConfig: string,
    private child: ChildProcess,
    private readonly cgroupParent: string,
  ) {}

  /** docker.io's dockerd, installing it when missing; undefined (with why) when it cannot be. */
  static ensureInstalled(): string | undefined {
    if (fs.existsSync('/usr/sbin/dockerd')) return undefined;
    // policy-rc.d keeps the package's init script from starting a dockerd of its own with
    // the defaults (docker0, iptables on, FORWARD DROP) on this shared machine.
    const hadPolicy = fs.existsSync('/usr/sbin/policy-rc.d');
    if (!hadPolicy) fs.writeFileSync('/usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    try {
      const r = spawnSync('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=600', '--no-install-recommends', 'docker.io'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        encoding: 'utf8',
      });
      if (r.status !== 0 || !fs.existsSync('/usr/sbin/dockerd')) return `apt-get install docker.io failed (${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' ')}`;
      return undefined;
    } finally {
      if (!hadPolicy) fs.rmSync('/usr/sbin/policy-rc.d', { force: true });
    }
  }

  /** Start one; `liveRestore` keeps its containers running across its own restart. */
  static async start(work: string, opts: { liveRestore?: boolean } = {}): Promise<BenchDockerd> {
    const dataRoot = path.join(work, 'docker-data');
    // a short exec root: containerd's and the shims' sockets live under it (108-byte limit)
    const execRoot = path.join('/tmp', `bdx-${path.basename(work).slice(-6)}`);
    const socket = path.join(execRoot, 'docker.sock');
    const log = path.join(work, 'dockerd.log');
    const config = path.join(work, 'dockerd.json');
    const dockerConfig = path.join(work, 'docker-config');
    fs.mkdirSync(dataRoot, { recursive: true });
    fs.mkdirSync(execRoot, { recursive: true });
    fs.mkdirSync(dockerConfig, { recursive: true });
    fs.writeFileSync(config, '{}\n');
    const args = [
      '--config-file', config,
      '--data-root', dataRoot,
      '--exec-root', execRoot,
      '--pidfile', path.join(execRoot, 'dockerd.pid'),
      '--host', 'unix://' + socket,
      '--bridge=none', '--iptables=false', '--ip-masq=false', '--ip-forward=false', '--ip6tables=false',
      '--storage-driver', 'overlay2',
      '--cgroup-parent', cgroupParent(work),
      ...(opts.liveRestore ? ['--live-restore'] : []),
    ];
    const fd = fs.openSync(log, 'a');
    // dockerd 20.10 writes a trust key to /etc/docker/key.json whatever its roots: destroy() removes one it made
    BenchDockerd.keyExisted ??= fs.existsSync(TRUST_KEY);
    const child = spawn('/usr/sbin/dockerd', args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const d = new BenchDockerd(socket, dataRoot, execRoot, log, dockerConfig, child, cgroupParent(work));
    for (let i = 0; i < 600; i++) {
      if (child.exitCode !== null) break;
      if (d.answers()) return d;
      await new Promise((r) => setTimeout(r, 100));
    }
    await d.stop();
    throw new Error(`the reference dockerd did not start:\n${fs.readFileSync(log, 'utf8').slice(-2000)}`);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: 'unix://' + this.socket, DOCKER_CONFIG: this.dockerConfig };
  }

  private answers(): boolean {
    return spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { env: this.env(), encoding: 'utf8', timeout: 5000 }).status === 0;
  }

  docker(args: string[]): string {
    return sh('docker', args, this.env());
  }

  /** The daemon's version, for the row's label. */
  version(): string {
    return this.docker(['version', '--format', '{{.Server.Version}}']).trim();
  }

  /** Stop it (SIGTERM, then wait); with live restore its containers go on running. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.on('exit', r));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(timer);
    }
  }

  /** Start it again on the same roots (the adoption reference). */
  async restart(work: string, opts: { liveRestore?: boolean } = {}): Promise<BenchDockerd> {
    await this.stop();
    return BenchDockerd.start(work, opts);
  }

  /**
   * Remove every container, stop, and leave nothing behind: its mounts under the data and
   * exec roots, the roots themselves, its cgroup.
   */
  async destroy(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        const ids = this.docker(['ps', '-aq']).split('\n').filter(Boolean);
        for (let i = 0; i < ids.length; i += 50) this.docker(['rm', '-f', ...ids.slice(i, i + 50)]);
      } catch {
        /* it stops below either way */
      }
    }
    await this.stop();
    const mounts = fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((m) => m && (m.startsWith(this.dataRoot + '/') || m === this.dataRoot || m.startsWith(this.execRoot + '/') || m === this.execRoot))
      .reverse();
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    fs.rmSync(this.dataRoot, { recursive: true, force: true });
    fs.rmSync(this.execRoot, { recursive: true, force: true });
    if (BenchDockerd.keyExisted === false) fs.rmSync(TRUST_KEY, { force: true });
    // its cgroup parent, under every v1 controller (or the one v2 tree)
    for (const ctrl of ['', ...fs.readdirSync('/sys/fs/cgroup')]) {
      const dir = path.join('/sys/fs/cgroup', ctrl, this.cgroupParent);
      if (fs.existsSync(dir)) spawnSync('rmdir', [dir]);
    }
  }

  logText(): string {
    return fs.readFileSync(this.log, 'utf8');
  }
}

function cgroupParent(work: string): string {
  return `bench-dockerd-${path.basename(work).slice(-6)}`;
}
