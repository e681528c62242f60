/**
 * Faults of the processes berth starts for a container (issue 18): a berth-monitor killed
 * with SIGKILL, and a create that times out. Either way the container must end cleanly —
 * `stop` and `rm -f` work at once, and nothing of it is left: no process, no cgroup, no
 * runc state, no mount. Real processes throughout; the slow create is a real runc behind
 * a wrapper that lingers after `runc create` (as a runc slowed by a huge spec would).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { mountsUnder } from '../helpers/mounts';
import { cgroupDirs } from '../../src/runtime/cgroups';
import { cgroupParent } from '../../src/engine/host';

// The daemon inherits this: creates taking longer than 20 s time out (the default is 120 s).
const CREATE_TIMEOUT_MS = 20_000;
process.env.BERTH_CREATE_TIMEOUT_MS = String(CREATE_TIMEOUT_MS);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

/** Every process whose command line mentions `word` (the container id, a marker). */
function processesWith(word: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (argv.includes(word) && Number(pid) !== process.pid) found.push(`${pid}: ${argv.split('\0').join(' ')}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** A process's state letter and parent, or undefined when it is gone. */
function stat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** What a container may leave behind: processes naming it, its cgroups, runc state, mounts. */
function leftovers(id: string, initPid?: number): string[] {
  const left = processesWith(id);
  if (initPid !== undefined) {
    const s = stat(initPid);
    if (s && s.state !== 'Z') left.push(`init ${initPid} still runs (${s.state})`);
  }
  for (const dir of cgroupDirs(`${cgroupParent(d.root)}/${id}`)) if (fs.existsSync(dir)) left.push(`cgroup ${dir}`);
  if (fs.existsSync(path.join(d.root, 'runtime', id))) left.push('runc state');
  left.push(...mountsUnder(path.join(d.root, 'containers', id)).map((m) => `mount ${m}`));
  return left;
}

/** Run a busybox sleeper; its id, init pid and monitor pid (the init's parent). */
async function sleeper(name: string): Promise<{ id: string; pid: number; monitor: number }> {
  const r = await d.docker(['run', '-d', '--name', name, 'busybox', 'sleep', '1000']);
  if (r.code !== 0) throw new Error(r.stderr);
  const id = r.stdout.trim();
  const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', id])).stdout.trim());
  const monitor = stat(pid)!.ppid;
  if (!fs.readFileSync(`/proc/${monitor}/cmdline`, 'utf8').includes('berth-monitor')) throw new Error(`the parent ${monitor} of ${pid} is not berth-monitor`);
  return { id, pid, monitor };
}

test('kill -9 of a container\'s monitor, then docker rm -f succeeds at once and leaves nothing', async (t) => {
  const c = await sleeper('orphan-rm');
  process.kill(c.monitor, 'SIGKILL');
  const started = Date.now();
  const rm = await d.docker(['rm', '-f', 'orphan-rm']);
  const took = Date.now() - started;
  t.is(rm.code, 0, rm.stderr);
  t.true(took < 15_000, `rm -f took ${took} ms`);
  t.deepEqual(leftovers(c.id, c.pid), []);
  t.not((await d.docker(['inspect', c.id])).code, 0, 'the container is gone');
});

test('a container whose monitor died is noticed as exited; docker stop on one works at once', async (t) => {
  const a = await sleeper('orphan-seen');
  process.kill(a.monitor, 'SIGKILL');
  // Noticed without anyone asking: it exits with Docker's "unknown" status.
  let state = '';
  for (let i = 0; i < 300 && !state.startsWith('exited'); i++) {
    await sleep(100);
    state = (await d.docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', a.id])).stdout.trim();
  }
  t.is(state, 'exited 255');
  t.deepEqual(leftovers(a.id, a.pid), []);

  const b = await sleeper('orphan-stop');
  process.kill(b.monitor, 'SIGKILL');
  const started = Date.now();
  const stop = await d.docker(['stop', '-t', '1', 'orphan-stop']);
  t.is(stop.code, 0, stop.stderr);
  t.true(Date.now() - started < 15_000);
  t.regex((await d.docker(['inspect', '-f', '{{.State.Status}}', b.id])).stdout, /^exited/);
  t.deepEqual(leftovers(b.id, b.pid), []);
  // Both can be started again: nothing stale stands in the way.
  const again = await d.docker(['start', 'orphan-stop']);
  t.is(again.code, 0, again.stderr);
  t.is((await d.docker(['rm', '-f', 'orphan-seen', 'orphan-stop'])).code, 0);
});

test('a create that times out kills the monitor, the runtime and the container\'s init, and leaves nothing', async (t) => {
  // runc really creates the container (its init waits in the cgroup), then the "runtime"
  // lingers: the monitor never hears back.
  const marker = String(900 + Math.floor(Math.random() * 99)) + '.25';
  const wrapper = path.join(d.root, 'slow-runc');
  fs.writeFileSync(wrapper, `#!/bin/sh\nrunc "$@"; rc=$?\nfor a; do [ "$a" = create ] && exec sleep ${marker}; done\nexit $rc\n`, { mode: 0o755 });
  const started = Date.now();
  const run = await d.docker(['run', '-d', '--name', 'slow', '--runtime', wrapper, 'busybox', 'sleep', '1000']);
  const took = Date.now() - started;
  t.not(run.code, 0, 'the start failed');
  t.true(took >= CREATE_TIMEOUT_MS - 1000 && took < CREATE_TIMEOUT_MS + 30_000, `the start took ${took} ms`);
  const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'slow'])).stdout.trim();
  t.regex(id, /^[0-9a-f]{64}$/);
  t.deepEqual(leftovers(id), []);
  t.deepEqual(processesWith(`sleep\0${marker}`), [], 'the lingering runtime is gone');
  t.regex((await d.docker(['inspect', '-f', '{{.State.Status}}', 'slow'])).stdout, /^(created|exited)/);
  const rm = await d.docker(['rm', '-f', 'slow']);
  t.is(rm.code, 0, rm.stderr);
});
