import test from 'ava';
import { collectOutput, engineEnv } from './env';
import { eventually } from '../helpers/eventually';

test('run busybox echo hi: the logs say hi and it exits 0', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['echo', 'hi'] });
  const r = await env.engine.wait(id, 'not-running');
  t.is(r.StatusCode, 0);
  t.is(r.Error, null);
  const out = await collectOutput(env.engine.logs(id, { stdout: true, stderr: true }));
  t.is(out.stdout, 'hi\n');
  const i = await env.inspect(id);
  t.is(i.State.Status, 'exited');
  t.is(i.State.ExitCode, 0);
  t.is(i.Path, 'echo');
  t.deepEqual(i.Args, ['hi']);
  t.not(i.State.StartedAt, '0001-01-01T00:00:00Z');
  t.not(i.State.FinishedAt, '0001-01-01T00:00:00Z');
  t.true(i.LogPath.endsWith('json.log'));
  t.truthy(i.GraphDriver.Data.UpperDir);
  t.is(i.Config.Hostname, id.slice(0, 12));
  const actions = env.seen.filter((e) => e.id === id).map((e) => e.Action);
  t.deepEqual(actions, ['create', 'start', 'die']);
  t.is(env.seen.find((e) => e.Action === 'die')?.Actor.Attributes.exitCode, '0');
  // A finished run leaves no runtime state and no mount behind.
  t.deepEqual(await env.runtime.list(), []);
});

test("sh -c 'exit 3': wait gives 3", async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'exit 3'] });
  t.is((await env.engine.wait(id)).StatusCode, 3);
  const [s] = await env.engine.list({ all: true });
  t.regex(s.Status, /^Exited \(3\) (Less than a second|\d+ seconds?) ago$/);
  t.is(s.State, 'exited');
  t.is(s.Command, 'sh -c exit 3');
});

test('a detached sleep is listed as Up; stop ends it once the timeout runs out (137: PID 1 ignores SIGTERM)', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] }, 'sleeper');
  const [s] = await env.engine.list();
  t.is(s.Id, id);
  t.deepEqual(s.Names, ['/sleeper']);
  t.regex(s.Status, /^Up /);
  t.is(s.State, 'running');
  t.true((await env.inspect('sleeper')).State.Pid > 0);
  // How long it takes is a benchmark row (npm run bench -- stop); here, that it stops at all.
  t.true(await env.engine.stop('sleeper', { timeout: 1 }));
  const i = await env.inspect(id);
  t.false(i.State.Running);
  t.is(i.State.ExitCode, 137, 'sleep as PID 1 ignores SIGTERM: the timeout ran out and it was killed');
  t.deepEqual(
    env.seen.filter((e) => e.id === id && e.Action === 'kill').map((e) => e.Actor.Attributes.signal),
    ['15', '9'],
    'SIGTERM first, SIGKILL when the timeout ran out',
  );
  t.deepEqual(await env.engine.list(), [], 'not listed without all');
  t.false(await env.engine.stop(id), 'stopping a stopped container changes nothing');
  t.true(env.seen.some((e) => e.Action === 'stop' && e.id === id));
});

test('kill -s KILL gives 137; kill of a stopped container is a conflict, a bad signal invalid', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] });
  await env.engine.kill(id, 'KILL');
  t.is((await env.engine.wait(id)).StatusCode, 137);
  await t.throwsAsync(env.engine.kill(id), { code: 'CONFLICT' });
  await t.throwsAsync(env.engine.kill(id, 'NOSUCHSIG'), { code: 'INVALID_ARGUMENT' });
  const kill = env.seen.find((e) => e.Action === 'kill');
  t.is(kill?.Actor.Attributes.signal, '9');
});

test('restart policy on-failure:2 restarts exactly twice', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'echo run; exit 1'], HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } });
  // A sibling allowed one more restart, started just after: once it has run a third
  // time, the backoff in which ours would have run again has passed too.
  const sibling = await env.run({ Cmd: ['sh', '-c', 'exit 1'], HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 } } });
  const i = await eventually(async () => { const x = await env.inspect(id); return x.State.Status === 'exited' && x.RestartCount === 2 && x; }, { message: 'two restarts then exited' });
  t.is(i.State.ExitCode, 1);
  await eventually(async () => { const x = await env.inspect(sibling); return x.RestartCount === 3 && x; }, { message: 'the sibling to restart a third time' });
  const after = await env.inspect(id);
  t.is(after.RestartCount, 2);
  t.is(after.State.Status, 'exited');
  t.is(env.seen.filter((e) => e.id === id && e.Action === 'start').length, 3);
  t.is(env.seen.filter((e) => e.id === id && e.Action === 'die').length, 3);
  const out = await collectOutput(env.engine.logs(id, { stdout: true }));
  t.is(out.stdout, 'run\nrun\nrun\n');
});

test('restart policy always restarts a container that exits 0; stop ends it for good', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'sleep 0.2'], HostConfig: { RestartPolicy: { Name: 'always' } } });
  await eventually(async () => { const x = await env.inspect(id); return x.RestartCount >= 1 && x.State.Running && x; }, { message: 'a restart' });
  await env.engine.stop(id, { timeout: 1 });
  const i = await env.inspect(id);
  t.false(i.State.Running);
  const n = i.RestartCount;
  // A sibling with the same policy, started now: once it has restarted twice, a restart
  // of ours (backoff 100 ms, doubling) would have come too.
  const sibling = await env.run({ Cmd: ['sh', '-c', 'sleep 0.2'], HostConfig: { RestartPolicy: { Name: 'always' } } });
  await eventually(async () => { const x = await env.inspect(sibling); return x.RestartCount >= 2 && x; }, { message: 'the sibling to restart twice' });
  t.is((await env.inspect(id)).RestartCount, n);
  t.is((await env.inspect(id)).State.Status, 'exited');
});

test('AutoRemove removes the container after it exits', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['echo', 'bye'], HostConfig: { AutoRemove: true } });
  const removed = env.engine.wait(Id, 'removed');
  await env.engine.start(Id);
  t.is((await removed).StatusCode, 0);
  await t.throwsAsync(env.engine.inspect(Id), { code: 'NOT_FOUND' });
  t.true(env.seen.some((e) => e.id === Id && e.Action === 'destroy'));
});

test('a duplicate name is a CONFLICT; refs by name, /name, id prefix', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'web');
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'web'), { code: 'CONFLICT' });
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['true'] }, '/web'), { code: 'CONFLICT' });
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'bad name!'), { code: 'INVALID_ARGUMENT' });
  t.is((await env.inspect('web')).Id, Id);
  t.is((await env.inspect('/web')).Id, Id);
  t.is((await env.inspect(Id.slice(0, 8))).Id, Id);
  await t.throwsAsync(env.inspect('nosuch'), { code: 'NOT_FOUND' });
  const other = await env.engine.create({ Image: 'busybox', Cmd: ['true'] });
  t.regex((await env.inspect(other.Id)).Name, /^\/[a-z]+_[a-z]+\d?$/, 'a Docker-style random name');
  await t.throwsAsync(env.engine.create({ Image: 'nosuchimage', Cmd: ['true'] }, 'xyz'), { code: 'NOT_FOUND' });
  await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'xyz'); // the failed create freed the name
});

test('create refuses a workdir under /proc, a memory limit below 6 MB, --rm with a restart policy', async (t) => {
  const env = await engineEnv(t);
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['ls'], WorkingDir: '/proc/self/fd/3' }), { code: 'INVALID_ARGUMENT' });
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['ls'], WorkingDir: '/proc' }), { code: 'INVALID_ARGUMENT' });
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['ls'], HostConfig: { Memory: 4 * 1024 * 1024 } }), { code: 'INVALID_ARGUMENT' });
  await t.throwsAsync(
    env.engine.create({ Image: 'busybox', Cmd: ['ls'], HostConfig: { AutoRemove: true, RestartPolicy: { Name: 'always' } } }),
    { code: 'INVALID_ARGUMENT' },
  );
  t.deepEqual(await env.engine.list({ all: true }), [], 'nothing was made');
});

test('a workdir symlinked into /proc is refused at start', async (t) => {
  const env = await engineEnv(t);
  // The image has no /work; the first container makes it a symlink to /proc/self and commits.
  const maker = await env.run({ Cmd: ['ln', '-s', '/proc/self', '/work'] });
  await env.engine.wait(maker);
  const { Id: image } = await env.engine.commit(maker, { repo: 'evil' });
  const { Id } = await env.engine.create({ Image: image, Cmd: ['ls'], WorkingDir: '/work' });
  await t.throwsAsync(env.engine.start(Id), { code: 'INVALID_ARGUMENT' });
  const i = await env.inspect(Id);
  t.is(i.State.Status, 'exited');
  t.truthy(i.State.Error);
});

test('a missing entrypoint fails start with exit code 127 and the error recorded', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['nosuchcommand'] });
  const err = await t.throwsAsync(env.engine.start(Id), { code: 'FAILED_PRECONDITION' });
  t.is((err as unknown as { exitCode: number }).exitCode, 127);
  const i = await env.inspect(Id);
  t.is(i.State.Status, 'exited');
  t.is(i.State.ExitCode, 127);
  t.regex(i.State.Error, /executable file not found/);
  t.is((await env.engine.wait(Id)).StatusCode, 127);
  t.deepEqual(await env.runtime.list(), []);
});

test('created, never started: stays created; remove of a running container needs force', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['sleep', '1000'] });
  const [s] = await env.engine.list({ all: true });
  t.is(s.State, 'created');
  t.is(s.Status, 'Created');
  await env.engine.start(Id);
  t.false(await env.engine.start(Id), 'starting a running container changes nothing');
  await t.throwsAsync(env.engine.remove(Id), { code: 'CONFLICT' });
  await env.engine.remove(Id, { force: true });
  await t.throwsAsync(env.inspect(Id), { code: 'NOT_FOUND' });
  t.deepEqual(await env.runtime.list(), []);
});

test('pause and unpause; a paused container is listed as paused and stops', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] });
  await env.engine.pause(id);
  const i = await env.inspect(id);
  t.is(i.State.Status, 'paused');
  t.true(i.State.Paused);
  t.regex((await env.engine.list())[0].Status, /\(Paused\)$/);
  await t.throwsAsync(env.engine.pause(id), { code: 'CONFLICT' });
  await t.throwsAsync(env.engine.execCreate(id, { Cmd: ['ls'] }), { code: 'CONFLICT' });
  await env.engine.unpause(id);
  t.is((await env.inspect(id)).State.Status, 'running');
  await env.engine.pause(id);
  t.true(await env.engine.stop(id, { timeout: 1 }));
  t.is((await env.inspect(id)).State.Status, 'exited');
});

test('rename, and a rename to a taken name is a CONFLICT', async (t) => {
  const env = await engineEnv(t);
  const a = await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'first');
  await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'second');
  await t.throwsAsync(env.engine.rename('first', 'second'), { code: 'CONFLICT' });
  await env.engine.rename('first', 'third');
  t.is((await env.inspect('third')).Id, a.Id);
  await t.throwsAsync(env.inspect('first'), { code: 'NOT_FOUND' });
  await env.engine.create({ Image: 'busybox', Cmd: ['true'] }, 'first'); // the old name is free
  t.is(env.seen.find((e) => e.Action === 'rename')?.Actor.Attributes.oldName, '/first');
});

test('prune removes stopped containers only', async (t) => {
  const env = await engineEnv(t);
  const done = await env.run({ Cmd: ['true'] });
  await env.engine.wait(done);
  const created = await env.engine.create({ Image: 'busybox', Cmd: ['true'], Labels: { keep: 'yes' } });
  const running = await env.run({ Cmd: ['sleep', '1000'] });
  const r1 = await env.engine.prune({ 'label!': ['keep'] });
  t.deepEqual(r1.ContainersDeleted, [done]);
  const r2 = await env.engine.prune();
  t.deepEqual(r2.ContainersDeleted, [created.Id]);
  t.deepEqual((await env.engine.list({ all: true })).map((c) => c.Id), [running]);
});

test('list filters: status, name, label, exited, ancestor, id', async (t) => {
  const env = await engineEnv(t);
  const ok = await env.run({ Cmd: ['true'], Labels: { tier: 'a' } }, 'okay');
  const bad = await env.run({ Cmd: ['false'] }, 'failing');
  await env.engine.wait(ok);
  await env.engine.wait(bad);
  const ids = async (filters: Record<string, string[]>) => (await env.engine.list({ all: true, filters })).map((c) => c.Id).sort();
  t.deepEqual(await ids({ status: ['exited'] }), [ok, bad].sort());
  t.deepEqual(await ids({ name: ['okay'] }), [ok]);
  t.deepEqual(await ids({ label: ['tier=a'] }), [ok]);
  t.deepEqual(await ids({ exited: ['1'] }), [bad]);
  t.deepEqual(await ids({ ancestor: ['busybox'] }), [ok, bad].sort());
  t.deepEqual(await ids({ id: [bad.slice(0, 10)] }), [bad]);
  await t.throwsAsync(env.engine.list({ filters: { status: ['sleepy'] } }), { code: 'INVALID_ARGUMENT' });
  await t.throwsAsync(env.engine.list({ filters: { bogus: ['x'] } }), { code: 'INVALID_ARGUMENT' });
});
