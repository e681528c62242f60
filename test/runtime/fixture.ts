import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorPath, monitorSourcePath, waitExit, type ExitRecord } from '../../src/runtime/monitor';
import { OciRuntime, type CreateIO } from '../../src/runtime/runtime';
import { buildSpec, type ContainerSpecInput } from '../../src/runtime/spec';
import { cgroupDirs, cgroupParent } from '../../src/engine/host';
import { alive } from '../../volumes/shared/process';
import { eventually } from '../helpers/eventually';
import { cleanLeftovers, LeakError, leftoversOf, settleAutoclearLoops, type Leftover } from '../helpers/leaks';

/**
 * A real runc sandbox per test: a busybox rootfs, its own runc --root, its own cgroup
 * prefix (`cgroupParent(dir)`, as a daemon on that root would have). Teardown deletes every
 * container, waits for the monitors, and then applies the suite's one leak policy
 * (test/helpers/leaks.ts) to the temp dir: what is left (a runc container, a monitor or other
 * process naming the dir, a cgroup under the prefix, a mount) is reported, removed, and fails
 * the test by name.
 */

const RUNC = fs.existsSync('/usr/sbin/runc') ? '/usr/sbin/runc' : 'runc';

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

/** Whether a monitor is still running (a zombie one has exited). */
const running = (pid: number): boolean => alive({ pid });

export async function sandbox(t: ExecutionContext): Promise<Sandbox> {
  ensureMonitor();
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-rt-'));
  const rootfs = makeRootfs(dir);
  const runtimeRoot = path.join(dir, 'runc');
  const rt = new OciRuntime({ path: RUNC, root: runtimeRoot });
  const cgroupPrefix = cgroupParent(dir);
  const monitors: number[] = [];

  t.teardown(async () => {
    const problems: string[] = [];
    const listed = async (): Promise<Array<{ id: string; status: string }>> =>
      rt.list().catch((e: Error) => {
        problems.push(`listing runc containers failed: ${e.message}`);
        return [];
      });
    for (const c of await listed()) await rt.delete(c.id, true).catch((e: Error) => problems.push(`runc delete ${c.id} failed: ${e.message}`));
    // The monitors record the exit and go; wait for that (a hang guard), then scan: a
    // monitor still running is reported below (its arguments name files under `dir`).
    await eventually(() => !monitors.some(running), { timeout: 10_000, message: 'the monitors to exit' }).catch(() => false);
    const stray = monitors.filter(running);
    const runc: Leftover[] = (await listed()).map((c) => ({ kind: 'runc-state', what: c.id, detail: c.status }));
    // runc makes the prefix (the parent) and removes only a container's own cgroup: the
    // parent is the fixture's to remove. rmdir fails while a container's cgroup is left in
    // it, and the scan below reports that.
    for (const d of cgroupDirs(cgroupPrefix)) {
      try {
        fs.rmdirSync(d);
      } catch {
        // not empty or gone: reported below if left
      }
    }
    await settleAutoclearLoops(dir);
    const found = leftoversOf({ root: dir });
    // A tracked monitor whose arguments do not name `dir` (started with files elsewhere).
    const left = [...runc, ...found, ...stray.filter((pid) => !found.some((l) => l.kind === 'process' && l.what === String(pid))).map((pid): Leftover => ({ kind: 'process', what: String(pid), detail: 'a tracked berth-monitor' }))];
    const uncleaned = left.length ? await cleanLeftovers({ root: dir }, left) : [];
    for (const pid of stray.filter(running)) process.kill(pid, 'SIGKILL');
    await fs.promises.rm(dir, { recursive: true, force: true }).catch((e: Error) => problems.push(`removing ${dir} failed: ${e.message}`));
    if (left.length || problems.length) throw new LeakError(`runc sandbox of test "${t.title}" (${dir})`, left, uncleaned, problems);
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
