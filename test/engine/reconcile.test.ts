import test from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { isMountPoint } from '../../volumes/layers/mount';
import { collectOutput, engineEnv, monitorsUnder } from './env';
import { eventually } from '../helpers/eventually';

/** Whether a process is gone (or a zombie: dead, not yet reaped). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function killAndWait(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await eventually(() => gone(pid), { message: `pid ${pid} to be gone` });
}

test('a new engine adopts a running container (same pid): logs, exec, top and stop work on it', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'trap "echo bye; exit 0" TERM; echo before; while true; do sleep 0.1; done'] });
  // 'before' comes once the trap is set, so the stop below is answered with 'bye'.
  await eventually(async () => (await collectOutput(env.engine.logs(id, { stdout: true }))).stdout === 'before\n', { message: 'the container to set its trap' });
  const pid = (await env.inspect(id)).State.Pid;
  await env.reopen(); // berthd gone without stopping anything, then back
  const i = await env.inspect(id);
  t.is(i.State.Status, 'running');
  t.is(i.State.Pid, pid);
  const follow = collectOutput(env.engine.logs(id, { follow: true, stdout: true }));
  const { Id: execId } = await env.engine.execCreate(id, { Cmd: ['sh', '-c', 'echo exec; exit 4'] });
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d));
  t.is(await env.engine.execStart(execId, { stdout: out }), 4);
  t.is(text, 'exec\n');
  const topped = await env.engine.top(id);
  t.true(topped.Processes.some((p) => p[topped.Titles.indexOf('PID')] === String(pid)));
  t.true(await env.engine.stop(id, { timeout: 5 }));
  t.is((await env.inspect(id)).State.ExitCode, 0);
  t.is((await follow).stdout, 'before\nbye\n', 'the follow ended when the container stopped');
  t.deepEqual(await env.runtime.list(), []);
  t.false(await isMountPoint(path.join(env.containersDir, id, 'rootfs')));
});

test('a container paused and one unpaused behind the engine while it was away are adopted as the runtime lists them', async (t) => {
  const env = await engineEnv(t);
  const frozen = await env.run({ Cmd: ['sleep', '1000'] });
  const thawed = await env.run({ Cmd: ['sleep', '1000'] });
  await env.engine.pause(thawed);
  await env.reopen(async () => {
    await env.runtime.pause(frozen);
    await env.runtime.resume(thawed);
  });
  const f = await env.inspect(frozen);
  t.is(f.State.Status, 'paused');
  t.true(f.State.Paused);
  const r = await env.inspect(thawed);
  t.is(r.State.Status, 'running');
  t.false(r.State.Paused);
  await env.engine.unpause(frozen);
  t.is((await env.inspect(frozen)).State.Status, 'running');
  t.true(await env.engine.stop(frozen, { timeout: 1 }));
  t.true(await env.engine.stop(thawed, { timeout: 1 }));
});

test('restart always: monitor and init killed behind our back, running again after the engine reopens', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'], HostConfig: { RestartPolicy: { Name: 'always' } } });
  const oldPid = (await env.inspect(id)).State.Pid;
  await env.reopen(async () => {
    // A host reboot, or an OOM killer with bad taste: everything of the container dies at once.
    for (const m of monitorsUnder(env.dataRoot)) await killAndWait(m);
    await killAndWait(oldPid);
  });
  const i = await eventually(async () => { const x = await env.inspect(id); return x.State.Status === 'running' && x; }, { message: 'running again' });
  t.not(i.State.Pid, oldPid);
  t.true(env.seen.some((e) => e.id === id && e.Action === 'die' && e.Actor.Attributes.exitCode === '255'));
  t.is((await env.runtime.list()).filter((s) => s.status === 'running').length, 1);
});

test('a container that exited while the engine was away is recorded and cleaned up; no restart without a policy', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] });
  await env.reopen(async () => {
    await env.runtime.kill(id, 'SIGKILL'); // the monitor records it, nobody is watching
    await eventually(async () => (await env.runtime.list()).find((c) => c.id === id)?.status === 'stopped', { message: 'runc to see the container stopped' });
  });
  const i = await eventually(async () => { const x = await env.inspect(id); return x.State.Status === 'exited' && x; }, { message: 'exited' });
  t.is(i.State.ExitCode, 137);
  t.deepEqual(await env.runtime.list(), [], 'no runtime state of a dead container');
  t.false(await isMountPoint(path.join(env.containersDir, id, 'rootfs')), 'no mount of a dead container');
});

test('created, never started: stays created across a restart', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { RestartPolicy: { Name: 'always' } } });
  await env.reopen();
  const i = await env.inspect(Id);
  t.is(i.State.Status, 'created');
  t.deepEqual(await env.runtime.list(), []);
});

test('a crash in the middle of create or remove is repaired on open', async (t) => {
  const env = await engineEnv(t);
  const keep = await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'keep');
  const doomed = await env.run({ Cmd: ['sleep', '1000'] }, 'doomed');
  const { topLayer } = await env.images.resolve('busybox');
  const halfMade = randomBytes(32).toString('hex');
  const orphan = randomBytes(32).toString('hex');
  await env.reopen(async () => {
    // create died after the snapshot and part of the directory
    await env.snapshotter.prepare(`ctr-${halfMade}`, topLayer);
    fs.mkdirSync(path.join(env.containersDir, `new-${halfMade}`, 'rootfs'), { recursive: true });
    // create died after the snapshot, before any directory
    await env.snapshotter.prepare(`ctr-${orphan}`, topLayer);
    // remove died right after its commit point (the rename), with the container still running
    fs.renameSync(path.join(env.containersDir, doomed), path.join(env.containersDir, `rm-${doomed}`));
  });
  t.deepEqual(fs.readdirSync(env.containersDir).sort(), [keep.Id]);
  const snaps: string[] = [];
  await env.snapshotter.walk((s) => {
    if (s.name.startsWith('ctr-')) snaps.push(s.name);
  });
  t.deepEqual(snaps, [`ctr-${keep.Id}`]);
  t.deepEqual(await env.runtime.list(), [], 'the half-removed container was deleted from the runtime');
  await t.throwsAsync(env.inspect('doomed'), { code: 'NOT_FOUND' });
  await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'doomed'); // its name is free
  t.is((await env.inspect('keep')).State.Status, 'created');
});
