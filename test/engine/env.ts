import type { ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { unmountAll } from '../../volumes/layers/mount';
import { ImageStore } from '../../src/images/store';
import { OciRuntime } from '../../src/runtime/runtime';
import { Engine } from '../../src/engine/engine';
import { EventBus, type DockerEvent } from '../../src/engine/events';
import { cgroupDirs, cgroupParent } from '../../src/engine/host';
import type { ContainerInspect, CreateBody, OutputChunk } from '../../src/engine/service';
import { ensureMonitor } from '../runtime/fixture';
import { mountsUnder } from '../helpers/mounts';

/**
 * A whole engine per test, in-process and real: its own data root under /tmp (so its own
 * cgroup parent /berth-<hash>), overlay snapshotter, image store (busybox made on first
 * use), runc with its own --root, and an event bus whose events the test can read.
 *
 * Teardown removes every container (force), closes the engine, then checks that nothing
 * is left behind: no runc container, no berth-monitor for this root, no mount under the
 * root, no cgroup under the parent. Leftovers are cleaned and then reported as a failure.
 */

export const RUNC = fs.existsSync('/usr/sbin/runc') ? '/usr/sbin/runc' : 'runc';

export interface EngineEnv {
  dataRoot: string;
  containersDir: string;
  snapshotter: OverlaySnapshotter;
  images: ImageStore;
  runtime: OciRuntime;
  events: EventBus;
  /** Every event so far. */
  seen: DockerEvent[];
  /** The current engine (reopen replaces it). */
  engine: Engine;
  /**
   * Open a new engine on the same root, as a restarted berthd would. The old one is
   * closed first (close leaves containers running: like a berthd that was SIGKILLed).
   * `between` runs while no engine is open.
   */
  reopen(between?: () => Promise<void>): Promise<Engine>;
  /** create + start; the id. */
  run(body: Partial<CreateBody>, name?: string): Promise<string>;
  inspect(id: string): Promise<ContainerInspect>;
  /** Wait until `pred` holds for the container (30 s at most: the suite may share the host). */
  until(id: string, pred: (i: ContainerInspect) => boolean, what?: string, ms?: number): Promise<ContainerInspect>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** berth-monitor processes whose arguments mention `root`. */
export function monitorsUnder(root: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (path.basename(argv[0]).startsWith('berth-monitor') && argv.some((a) => a.startsWith(root))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

export async function engineEnv(t: ExecutionContext): Promise<EngineEnv> {
  ensureMonitor();
  const dataRoot = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-eng-'));
  const containersDir = path.join(dataRoot, 'containers');
  const snapshotter = await OverlaySnapshotter.open(path.join(dataRoot, 'layers', 'overlay'));
  const images = await ImageStore.open({ root: path.join(dataRoot, 'images'), snapshotter, tmpDir: path.join(dataRoot, 'tmp') });
  const runtime = new OciRuntime({ path: RUNC, root: path.join(dataRoot, 'runc') });
  const events = new EventBus();
  const seen: DockerEvent[] = [];
  events.subscribe({}, (e) => seen.push(e));
  const open = (): Promise<Engine> =>
    Engine.open({ root: containersDir, dataRoot, snapshotter, images, runtime, events, log: (m) => t.log(`engine: ${m}`) });

  const env: EngineEnv = {
    dataRoot,
    containersDir,
    snapshotter,
    images,
    runtime,
    events,
    seen,
    engine: await open(),
    async reopen(between) {
      await env.engine.close();
      if (between) await between();
      env.engine = await open();
      return env.engine;
    },
    async run(body, name) {
      const { Id } = await env.engine.create({ Image: 'busybox', ...body } as CreateBody, name);
      await env.engine.start(Id);
      return Id;
    },
    inspect: (id) => env.engine.inspect(id),
    async until(id, pred, what = 'the condition', ms = 30_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = await env.engine.inspect(id);
        if (pred(i)) return i;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; state ${JSON.stringify(i.State)}`);
        await sleep(50);
      }
    },
  };

  t.teardown(async () => {
    const problems: string[] = [];
    try {
      const engine = env.engine;
      for (const c of await engine.list({ all: true }).catch(() => [])) {
        await engine.remove(c.Id, { force: true }).catch((e) => problems.push(`remove ${c.Id}: ${e.message}`));
      }
      await engine.close();
    } catch (e) {
      problems.push(`engine: ${(e as Error).message}`);
    }
    for (let i = 0; i < 100 && monitorsUnder(dataRoot).length; i++) await sleep(50);
    for (const pid of monitorsUnder(dataRoot)) {
      problems.push(`monitor ${pid} still running`);
      process.kill(pid, 'SIGKILL');
    }
    const left = await runtime.list().catch(() => []);
    for (const c of left) {
      problems.push(`runc container left: ${c.id} (${c.status})`);
      await runtime.delete(c.id, true).catch(() => undefined);
    }
    for (const m of mountsUnder(dataRoot)) {
      if (!m.startsWith(containersDir)) continue; // only the engine's: tests may mount elsewhere
      problems.push(`mount left: ${m}`);
    }
    for (const m of mountsUnder(dataRoot)) await unmountAll(m).catch(() => undefined);
    for (const dir of cgroupDirs(cgroupParent(dataRoot))) {
      if (!fs.existsSync(dir)) continue;
      const children = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
      problems.push(`cgroup left: ${dir}${children.length ? ` with ${children.map((c) => c.name).join(' ')}` : ''}`);
      try {
        removeCgroupTree(dir);
      } catch (e) {
        problems.push(`cannot remove cgroup ${dir}: ${(e as Error).message}`);
      }
    }
    await images.close();
    await snapshotter.close();
    await fs.promises.rm(dataRoot, { recursive: true, force: true });
    if (problems.length) throw new Error(`left behind:\n${problems.join('\n')}`);
  });
  return env;
}

/** Collect an output stream into text per stream. */
export async function collectOutput(it: AsyncIterable<OutputChunk>): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  for await (const c of it) {
    if (c.stream === 'stdout') stdout += c.data.toString('utf8');
    else stderr += c.data.toString('utf8');
  }
  return { stdout, stderr };
}

export { sleep };
