import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorPath, monitorSourcePath, waitExit, type ExitRecord } from '../../src/runtime/monitor';
import { OciRuntime, type CreateIO } from '../../src/runtime/runtime';
import { buildSpec, type ContainerSpecInput } from '../../src/runtime/spec';
import { alive } from '../../volumes/shared/process';
import { mountsUnder } from '../helpers/mounts';

/**
 * A real runc sandbox per test: a busybox rootfs, its own runc --root, its own cgroup
 * prefix (/berth-test-<random>). Teardown deletes every container, waits for the monitors,
 * removes the cgroup dirs and the temp dir, and then checks that nothing is left: no runc
 * container, no cgroup under the prefix, no mount under the temp dir.
 */

const RUNC = fs.existsSync('/usr/sbin/runc') ? '/usr/sbin/runc' : 'runc';
const CGROUP_FS = '/sys/fs/cgroup';

/** Build dist/bin/berth-monitor from source when missing or older than monitor.c. */
export function ensureMonitor(): string {
  const bin = monitorPath();
  const src = monitorSourcePath();
  const fresh = fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs;
  if (!fresh) {
    fs.mkdirSync(path.dirname(bin), { recursive: true });
    const tmp = `${bin}.tmp-${process.pid}`; // ava workers build side by side: rename is atomic
    execFileSync('cc', ['-O2', '-Wall', '-o', tmp, src], { stdio: 'inherit' });
    fs.renameSync(tmp, bin);
  }
  return bin;
}

/** A busybox root filesystem: /bin/busybox and one symlink per applet, root and nobody. */
export function makeRootfs(dir: string): string {
  const rootfs = path.join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'sbin']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(rootfs, 'bin', a));
  fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  return rootfs;
}

export interface Started {
  id: string;
  bundle: string;
  io: Required<Pick<CreateIO, 'log' | 'exitFile' | 'pidFile' | 'runtimeLog'>> & CreateIO;
  pid: number;
  monitorPid: number;
}

export interface Sandbox {
  dir: string;
  rootfs: string;
  rt: OciRuntime;
  runtimeRoot: string;
  cgroupPrefix: string;
  /** Paths for a container's bundle and files (nothing created yet but the directory). */
  paths(id: string): { bundle: string; io: Started['io'] };
  /** The spec input for `args` with this sandbox's rootfs and cgroup prefix. */
  input(id: string, args: string[], extra?: Partial<ContainerSpecInput>): ContainerSpecInput;
  /** writeBundle + create (not started). */
  create(args: string[], extra?: Partial<ContainerSpecInput>, io?: Partial<CreateIO>): Promise<Started>;
  /** create + start. */
  run(args: string[], extra?: Partial<ContainerSpecInput>, io?: Partial<CreateIO>): Promise<Started>;
  /** Wait for the exit record (10 s at most). */
  exit(c: Started): Promise<ExitRecord>;
  /** Have teardown wait for (and if need be kill) a monitor started elsewhere. */
  track(monitorPid: number): void;
  /** The log's entries. */
  logEntries(file: string): Promise<{ log: string; stream: string; time: string }[]>;
}

function cgroupDirs(prefix: string): string[] {
  const out: string[] = [];
  for (const h of fs.readdirSync(CGROUP_FS)) {
    const d = path.join(CGROUP_FS, h, prefix);
    if (fs.existsSync(d)) out.push(d);
  }
  return out;
}

/** rmdir a cgroup tree, children first (cgroup dirs hold only virtual files). */
function removeCgroupTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

/** Whether a monitor is still running (a zombie one has exited). */
const running = (pid: number): boolean => alive({ pid });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function sandbox(t: ExecutionContext): Promise<Sandbox> {
  ensureMonitor();
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-rt-'));
  const rootfs = makeRootfs(dir);
  const runtimeRoot = path.join(dir, 'runc');
  const rt = new OciRuntime({ path: RUNC, root: runtimeRoot });
  const cgroupPrefix = `/berth-test-${randomBytes(5).toString('hex')}`;
  const monitors: number[] = [];

  t.teardown(async () => {
    for (const c of await rt.list()) await rt.delete(c.id, true).catch(() => undefined);
    for (let i = 0; i < 100 && monitors.some(running); i++) await sleep(50); // they record the exit and go
    for (const pid of monitors.filter(running)) process.kill(pid, 'SIGKILL');
    for (const d of cgroupDirs(cgroupPrefix)) removeCgroupTree(d);
    const leftovers = await rt.list();
    const mounts = mountsUnder(dir);
    await fs.promises.rm(dir, { recursive: true, force: true });
    if (leftovers.length) throw new Error(`runc containers left: ${leftovers.map((c) => c.id).join(' ')}`);
    if (cgroupDirs(cgroupPrefix).length) throw new Error(`cgroups left under ${cgroupPrefix}`);
    if (mounts.length) throw new Error(`mounts left: ${mounts.join('\n')}`);
  });

  const sb: Sandbox = {
    dir,
    rootfs,
    rt,
    runtimeRoot,
    cgroupPrefix,
    paths(id) {
      const bundle = path.join(dir, 'containers', id);
      fs.mkdirSync(bundle, { recursive: true });
      return {
        bundle,
        io: {
          log: path.join(bundle, 'container.log'),
          exitFile: path.join(bundle, 'exit.json'),
          pidFile: path.join(bundle, 'init.pid'),
          runtimeLog: path.join(bundle, 'runtime.log'),
          cgroupPath: `${cgroupPrefix}/${id}`,
        },
      };
    },
    input(id, args, extra = {}) {
      return { rootfs, args, cgroupsPath: `${cgroupPrefix}/${id}`, hostname: id.slice(0, 12), ...extra };
    },
    async create(args, extra = {}, ioExtra = {}) {
      const id = `t-${randomBytes(6).toString('hex')}`;
      const { bundle, io } = sb.paths(id);
      await rt.writeBundle(bundle, buildSpec(sb.input(id, args, extra)));
      const allIo = { ...io, ...ioExtra };
      const { pid, monitorPid } = await rt.create(id, bundle, allIo);
      monitors.push(monitorPid);
      return { id, bundle, io: allIo, pid, monitorPid };
    },
    async run(args, extra, ioExtra) {
      const c = await sb.create(args, extra, ioExtra);
      await rt.start(c.id);
      return c;
    },
    exit(c) {
      return waitExit(c.io.exitFile, { signal: AbortSignal.timeout(10_000), pollMs: 50 });
    },
    track(pid) {
      monitors.push(pid);
    },
    async logEntries(file) {
      const text = await fs.promises.readFile(file, 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
    },
  };
  return sb;
}

/** This process's hard limit from /proc/self/limits, e.g. hostHardLimit('Max open files'). */
export function hostHardLimit(name: string): number | 'unlimited' {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1]; // soft, hard, units
  return hard === 'unlimited' || hard === undefined ? 'unlimited' : Number(hard);
}
