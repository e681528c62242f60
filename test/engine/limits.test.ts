import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { eventually } from '../helpers/eventually';
import { ORPHAN_CMD, ORPHAN_PS, orphanState } from '../helpers/orphan';
import { collectOutput, engineEnv, type EngineEnv } from './env';

async function execOut(env: EngineEnv, id: string, cmd: string[]): Promise<{ code: number; stdout: string }> {
  const { Id } = await env.engine.execCreate(id, { Cmd: cmd, AttachStdout: true });
  const out = new PassThrough();
  let stdout = '';
  out.on('data', (d: Buffer) => (stdout += d));
  const code = await env.engine.execStart(Id, { stdout: out });
  return { code, stdout };
}

test('OOM: memory 8m and a hog is OOMKilled with 137', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'x=a; while true; do x=$x$x; done'], HostConfig: { Memory: 8 * 1024 * 1024 } });
  t.is((await env.engine.wait(id)).StatusCode, 137);
  const i = await env.inspect(id);
  t.true(i.State.OOMKilled);
  t.true(env.seen.some((e) => e.id === id && e.Action === 'oom'));
});

test('--init: pid 1 is the init and it reaps zombies', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ORPHAN_CMD, HostConfig: { Init: true } });
  // Until the orphan has exited and been reaped (tini reaps on SIGCHLD, a moment later).
  const r = await eventually(
    async () => {
      const s = orphanState((await execOut(env, id, ORPHAN_PS)).stdout);
      return s.execd && !s.orphanRunning && s.zombies === 0 && s;
    },
    { message: 'the orphan sleep to have exited and been reaped' },
  );
  t.is(r.pid1, '/sbin/docker-init');
  await env.engine.kill(id);
});

test('the pids limit stops forks at the limit', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'sleep 30 & sleep 30 & sleep 30 & echo three; sleep 30 & echo four'], HostConfig: { PidsLimit: 4 } });
  t.is((await env.engine.wait(id)).StatusCode, 2);
  const out = await collectOutput(env.engine.logs(id, { stdout: true, stderr: true }));
  t.is(out.stdout, 'three\n');
  t.regex(out.stderr, /can't fork/);
});

test('a read-only rootfs refuses writes; /etc/hostname and resolv.conf are there', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'touch /x || echo refused; cat /etc/hostname; grep -c nameserver /etc/resolv.conf'], HostConfig: { ReadonlyRootfs: true } });
  t.is((await env.engine.wait(id)).StatusCode, 0);
  const out = await collectOutput(env.engine.logs(id, { stdout: true, stderr: true }));
  const [refused, hostname, ns] = out.stdout.trim().split('\n');
  t.is(refused, 'refused');
  t.is(hostname, id.slice(0, 12));
  t.true(Number(ns) >= 1);
  t.regex(out.stderr, /Read-only file system/);
});

test('env, user and workdir from the create body reach the process; a missing workdir is made', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'echo $FOO; id -u; pwd; echo $PATH'], Env: ['FOO=bar'], User: 'nobody', WorkingDir: '/made/here' });
  t.is((await env.engine.wait(id)).StatusCode, 0);
  const out = await collectOutput(env.engine.logs(id, { stdout: true }));
  t.deepEqual(out.stdout.trim().split('\n'), ['bar', '65534', '/made/here', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
});

test('the log rotates by LogConfig max-size and max-file', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({
    Cmd: ['sh', '-c', 'i=0; while [ $i -lt 60 ]; do echo line$i; i=$((i+1)); done'],
    HostConfig: { LogConfig: { Type: 'json-file', Config: { 'max-size': '1k', 'max-file': '2' } } },
  });
  t.is((await env.engine.wait(id)).StatusCode, 0);
  const dir = path.dirname((await env.inspect(id)).LogPath);
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('json.log')).sort(), ['json.log', 'json.log.1']);
  const lines = (await collectOutput(env.engine.logs(id, { stdout: true }))).stdout.trim().split('\n');
  t.is(lines[lines.length - 1], 'line59');
  t.true(lines.length < 60);
  await t.throwsAsync(env.engine.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { LogConfig: { Config: { 'max-size': 'lots' } } } }), {
    code: 'INVALID_ARGUMENT',
  });
});
