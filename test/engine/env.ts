import type { ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { ImageStore } from '../../src/images/store';
import { OciRuntime } from '../../src/runtime/runtime';
import { Engine } from '../../src/engine/engine';
import { EventBus, type DockerEvent } from '../../src/engine/events';
import type { ContainerInspect, CreateBody, OutputChunk } from '../../src/engine/service';
import { ensureMonitor } from '../runtime/fixture';
import { eventually } from '../helpers/eventually';
import { cleanLeftovers, LeakError, leftoversOf, processesNaming, settleAutoclearLoops, type Leftover } from '../helpers/leaks';

/**
 * A whole engine per test, in-process and real: its own data root under /tmp (so its own
 * cgroup parent /berth-<hash>), overlay snapshotter, image store (busybox made on first
 * use), runc with its own --root, and an event bus whose events the test can read.
 *
 * Teardown removes every container (force), closes the engine, and then applies the
 * suite's one leak policy (test/helpers/leaks.ts) to the root: what is left (a runc
 * container, a berth-monitor or other process naming the root, a mount under it, a cgroup
 * under its parent, a veth, a loop device) is reported, removed, and fails the test by name.
 * Wait for a container's state with `eventually` on `env.inspect`.
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
}

/** The live berth-monitor processes whose arguments name `root` (a test that kills them behind the engine's back). */
export function monitorsUnder(root: string): number[] {
  return processesNaming(root)
    .filter((p) => path.basename(p.cmd.split(' ')[0]).startsWith('berth-monitor'))
    .map((p) => p.pid);
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
  };

  t.teardown(async () => {
    const problems: string[] = [];
    try {
      const engine = env.engine;
      const all = await engine.list({ all: true }).catch((e: Error) => {
        problems.push(`listing containers failed: ${e.message}`);
        return [];
      });
      for (const c of all) await engine.remove(c.Id, { force: true }).catch((e: Error) => problems.push(`remove ${c.Id}: ${e.message}`));
      await engine.close();
    } catch (e) {
      problems.push(`closing the engine failed: ${(e as Error).message}`);
    }
    await images.close().catch((e: Error) => problems.push(`closing the image store failed: ${e.message}`));
    await snapshotter.close().catch((e: Error) => problems.push(`closing the snapshotter failed: ${e.message}`));
    // A removed container's monitor records the exit and goes right after; wait for that
    // (a hang guard), then scan: whatever still runs is reported below.
    await eventually(() => processesNaming(dataRoot).length === 0, { timeout: 10_000, message: 'the root\'s processes to exit' }).catch(() => undefined);
    const runc: Leftover[] = (
      await runtime.list().catch((e: Error) => {
        problems.push(`listing runc containers failed: ${e.message}`);
        return [];
      })
    ).map((c) => ({ kind: 'runc-state', what: c.id, detail: c.status }));
    await settleAutoclearLoops(dataRoot);
    const left = [...runc, ...leftoversOf({ root: dataRoot })];
    const uncleaned = left.length ? await cleanLeftovers({ root: dataRoot }, left) : [];
    await fs.promises.rm(dataRoot, { recursive: true, force: true }).catch((e: Error) => problems.push(`removing ${dataRoot} failed: ${e.message}`));
    if (left.length || problems.length) throw new LeakError(`engine of test "${t.title}" (${dataRoot})`, left, uncleaned, problems);
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

