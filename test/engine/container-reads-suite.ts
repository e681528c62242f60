import { randomBytes } from 'node:crypto';
import type { ExecutionContext, TestFn } from 'ava';
import type { ContainerService, CreateBody, OutputChunk } from '../../src/engine/service';
import { rejects } from '../helpers/errors';

/**
 * The container read-path conformance suite: the same named cases against every
 * ContainerService — the in-process engine and the socket client talking to a real daemon
 * (test/engine/container-reads.test.ts runs it both ways). It covers what the service
 * reads: list and its filters, inspect, top, logs and wait, and asserts error classes and
 * codes, never message text.
 *
 * The socket run shares one daemon between the cases, so each case labels its containers
 * with a value of its own (`c.label`), names them with a prefix of its own, and lists only
 * through that label.
 */
export function containerReadsSuite(test: TestFn, title: string, factory: (t: ExecutionContext) => Promise<ContainerService>): void {
  const it = (name: string, fn: (t: ExecutionContext, svc: ContainerService, c: Case) => Promise<void>): void => {
    test(`${title}: ${name}`, async (t) => {
      const svc = await factory(t);
      const c = newCase(svc);
      t.teardown(() => c.cleanup());
      await fn(t, svc, c);
    });
  };

  it('list shows running containers, all adds stopped ones, and filters by label, name, status and id', async (t, svc, c) => {
    const up = await c.run({ Cmd: ['sleep', '60'] }, 'up');
    const done = await c.run({ Cmd: ['true'] }, 'done');
    await svc.wait(done, 'not-running');
    const mine = { label: [c.label] };
    t.deepEqual(ids(await svc.list({ filters: mine })), [up], 'running only, by default');
    t.deepEqual(ids(await svc.list({ all: true, filters: mine })).sort(), [up, done].sort());
    t.deepEqual(ids(await svc.list({ all: true, filters: { ...mine, status: ['exited'] } })), [done]);
    t.deepEqual(ids(await svc.list({ all: true, filters: { ...mine, name: [c.name('done')] } })), [done]);
    t.deepEqual(ids(await svc.list({ all: true, filters: { ...mine, id: [up.slice(0, 12)] } })), [up]);
    t.deepEqual(ids(await svc.list({ all: true, filters: { ...mine, exited: ['0'] } })), [done]);
    const [row] = await svc.list({ filters: mine });
    t.like(row, { Id: up, Image: 'busybox', State: 'running', Names: [`/${c.name('up')}`] });
    t.regex(row.Command ?? '', /sleep 60/);
    t.is(row.Labels?.['berth.suite'], c.value);
  });

  it('list limit gives the newest containers first, stopped ones included', async (t, svc, c) => {
    const first = await c.create({ Cmd: ['true'] }, 'first');
    const second = await c.create({ Cmd: ['true'] }, 'second');
    const all = ids(await svc.list({ all: true, filters: { label: [c.label] } }));
    t.deepEqual(all, [second, first]);
    t.deepEqual(ids(await svc.list({ limit: 1, filters: { label: [c.label] } })), [second]);
  });

  it('inspect finds a container by id, id prefix and name, with its config, state and exit code', async (t, svc, c) => {
    const id = await c.run({ Cmd: ['sh', '-c', 'exit 3'], Env: ['SUITE=1'], WorkingDir: '/tmp' }, 'three');
    t.is((await svc.wait(id, 'not-running')).StatusCode, 3);
    const i = await svc.inspect(id);
    t.like(i, { Id: id, Name: `/${c.name('three')}`, State: { Status: 'exited', Running: false, ExitCode: 3 } });
    t.deepEqual(i.Config.Cmd, ['sh', '-c', 'exit 3']);
    t.true(i.Config.Env?.includes('SUITE=1'));
    t.is(i.Config.WorkingDir, '/tmp');
    t.is(i.Config.Labels?.['berth.suite'], c.value);
    t.is((await svc.inspect(id.slice(0, 12))).Id, id, 'by id prefix');
    t.is((await svc.inspect(c.name('three'))).Id, id, 'by name');
  });

  it('a missing container is NOT_FOUND for inspect, top, logs and wait; a bad filter is INVALID_ARGUMENT', async (t, svc, c) => {
    const missing = c.name('missing');
    await rejects(t, svc.inspect(missing), 'NOT_FOUND');
    await rejects(t, svc.top(missing), 'NOT_FOUND');
    await rejects(t, collect(svc.logs(missing, { stdout: true, stderr: true })), 'NOT_FOUND');
    await rejects(t, svc.wait(missing, 'not-running'), 'NOT_FOUND');
    await rejects(t, svc.list({ filters: { colour: ['blue'] } }), 'INVALID_ARGUMENT');
    await rejects(t, svc.list({ all: true, filters: { status: ['sleepy'] } }), 'INVALID_ARGUMENT');
    await rejects(t, svc.list({ all: true, filters: { exited: ['zero'] } }), 'INVALID_ARGUMENT');
  });

  it("top lists a running container's processes; a stopped one is CONFLICT", async (t, svc, c) => {
    const id = await c.run({ Cmd: ['sleep', '60'] }, 'top');
    const top = await svc.top(id);
    const cmd = top.Titles.indexOf('CMD');
    t.true(cmd >= 0, `titles ${top.Titles.join(' ')}`);
    t.true(top.Processes.some((p) => /sleep 60/.test(p[cmd])));
    const custom = await svc.top(id, '-o pid,comm');
    t.deepEqual(custom.Titles, ['PID', 'COMMAND']);
    t.true(custom.Processes.some((p) => p[1] === 'sleep'));
    const stopped = await c.create({ Cmd: ['true'] }, 'stopped');
    await rejects(t, svc.top(stopped), 'CONFLICT');
  });

  it('logs give stdout and stderr apart, honour tail, and follow ends when the container exits', async (t, svc, c) => {
    const id = await c.run({ Cmd: ['sh', '-c', 'echo out1; echo err1 >&2; echo out2; echo out3'] }, 'logs');
    await svc.wait(id, 'not-running');
    const both = await collect(svc.logs(id, { stdout: true, stderr: true }));
    t.is(text(both, 'stdout'), 'out1\nout2\nout3\n');
    t.is(text(both, 'stderr'), 'err1\n');
    t.is(text(await collect(svc.logs(id, { stdout: true })), 'stderr'), '', 'stdout only');
    t.is(text(await collect(svc.logs(id, { stderr: true })), 'stdout'), '', 'stderr only');
    // tail counts entries after the stream filter (the order between the two streams is the monitor's).
    t.is(text(await collect(svc.logs(id, { stdout: true, tail: 2 })), 'stdout'), 'out2\nout3\n');
    const live = await c.run({ Cmd: ['sh', '-c', 'echo early; sleep 1; echo late'] }, 'live');
    const followed = await collect(svc.logs(live, { stdout: true, stderr: true, follow: true }));
    t.is(text(followed, 'stdout'), 'early\nlate\n', 'follow returns once the run is over, with all of it');
  });

  it('wait resolves with the exit code, at once for a container that already exited', async (t, svc, c) => {
    const id = await c.run({ Cmd: ['sh', '-c', 'sleep 1; exit 7'] }, 'wait');
    t.like(await svc.wait(id, 'not-running'), { StatusCode: 7 });
    t.like(await svc.wait(id, 'not-running'), { StatusCode: 7 }, 'again, once it is stopped');
  });
}

interface Case {
  /** `berth.suite=<value>`: every container the case makes carries it. */
  label: string;
  value: string;
  /** A container name of this case's own. */
  name(what: string): string;
  create(body: Partial<CreateBody>, what: string): Promise<string>;
  run(body: Partial<CreateBody>, what: string): Promise<string>;
  /** Remove (force) every container the case made. */
  cleanup(): Promise<void>;
}

function newCase(svc: ContainerService): Case {
  const value = randomBytes(4).toString('hex');
  const made: string[] = [];
  const c: Case = {
    label: `berth.suite=${value}`,
    value,
    name: (what) => `suite-${value}-${what}`,
    async create(body, what) {
      const { Id } = await svc.create({ Image: 'busybox', ...body, Labels: { 'berth.suite': value, ...body.Labels } } as CreateBody, c.name(what));
      made.push(Id);
      return Id;
    },
    async run(body, what) {
      const id = await c.create(body, what);
      await svc.start(id);
      return id;
    },
    async cleanup() {
      for (const id of made) await svc.remove(id, { force: true }).catch(() => undefined);
    },
  };
  return c;
}

function ids(list: Array<{ Id: string }>): string[] {
  return list.map((x) => x.Id);
}

async function collect(it: AsyncIterable<OutputChunk>): Promise<OutputChunk[]> {
  const out: OutputChunk[] = [];
  for await (const chunk of it) out.push(chunk);
  return out;
}

function text(chunks: OutputChunk[], stream: 'stdout' | 'stderr'): string {
  return chunks
    .filter((x) => x.stream === stream)
    .map((x) => x.data.toString('utf8'))
    .join('');
}
