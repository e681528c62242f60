import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry } from '../helpers/registry';
import { runCommand } from '../helpers/proc';
import { writeContext } from './helpers';

/**
 * Where a build's base image and cache come from, with the docker CLI's classic builder
 * (DOCKER_BUILDKIT=0): a FROM that is not here is pulled during the build from a loopback
 * registry with htpasswd basic auth, with the credentials the CLI sends from its
 * config.json (X-Registry-Config), and `--pull` pulls again; `--cache-from` an image that
 * came through `docker save`/`docker load` into a fresh daemon (no parent chain there)
 * hits by its history and layers, to the same final image id.
 */

const USER = 'buildpuller';
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

let d: TestDaemon;
let work: string;
test.before(async () => {
  d = await TestDaemon.start();
  work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-build-src-'));
});
test.after.always(async () => {
  await d?.stop();
  if (work) await fs.promises.rm(work, { recursive: true, force: true });
});

/** A context directory under this file's work dir (a value of null makes a directory). */
const context = (name: string, files: Record<string, string | null>): string => writeContext(work, name, files);

const on = (daemon: TestDaemon, args: string[], env: NodeJS.ProcessEnv = {}) => runCommand('docker', args, { env: { ...daemon.env, DOCKER_BUILDKIT: '0', ...env } });

test.serial('FROM an image that is not here is pulled during the build with the X-Registry-Config credentials; without them it is refused; --pull pulls again', async (t) => {
  const htpasswd = path.join(work, 'htpasswd');
  await exec('htpasswd', ['-Bbc', htpasswd, USER, PASSWORD]);
  const reg = await TestRegistry.start({ htpasswd });
  t.teardown(() => reg.stop());
  const name = `${reg.host}/base/marked:v1`;

  t.is((await d.docker(['login', reg.host, '-u', USER, '--password-stdin'], { input: PASSWORD + '\n' })).code, 0);

  // Two versions of the base, v1 then v2, pushed under the same name.
  const mark = async (text: string) => {
    const r = await on(d, ['build', '-q', '-t', name, context(`base-${text}`, { Dockerfile: `FROM busybox\nRUN echo ${text} > /marker\n` })]);
    t.is(r.code, 0, r.stderr);
    const push = await on(d, ['push', name]);
    t.is(push.code, 0, push.stderr);
    return r.stdout.trim();
  };
  const one = await mark('one');
  t.is((await on(d, ['tag', name, 'keep-one:1'])).code, 0);
  t.is((await on(d, ['rmi', name])).code, 0, 'the name is not here; the image stays as keep-one:1');
  const user = context('user', { Dockerfile: `FROM ${name}\nCMD ["cat", "/marker"]\n` });

  // The CLI reads its config.json and sends every credential in X-Registry-Config.
  const pulled = await on(d, ['build', '-t', 'user:1', user]);
  t.is(pulled.code, 0, pulled.stderr + pulled.stdout);
  t.is((await on(d, ['run', '--rm', 'user:1'])).stdout, 'one\n');
  t.is(JSON.parse((await on(d, ['image', 'inspect', name])).stdout)[0].Id, one, 'the base is here now, by its name');
  t.false(d.log().includes(PASSWORD), 'the password is never logged');

  // Without credentials (an empty CLI config) the registry refuses the pull.
  t.is((await on(d, ['rmi', 'user:1', name])).code, 0);
  const anonConfig = fs.mkdtempSync(path.join(work, 'anon-config-'));
  const anon = await on(d, ['build', user], { DOCKER_CONFIG: anonConfig });
  t.not(anon.code, 0);
  t.regex(anon.stderr, /unauthorized|authentication required/i);

  // v2 is pushed; the name here is put back on v1. A build uses the local v1; --pull takes v2.
  await mark('two');
  t.is((await on(d, ['tag', 'keep-one:1', name])).code, 0);
  t.is((await on(d, ['build', '--no-cache', '-t', 'user:local', user])).code, 0);
  t.is((await on(d, ['run', '--rm', 'user:local'])).stdout, 'one\n');
  const repulled = await on(d, ['build', '--pull', '-t', 'user:pulled', user]);
  t.is(repulled.code, 0, repulled.stderr + repulled.stdout);
  t.is((await on(d, ['run', '--rm', 'user:pulled'])).stdout, 'two\n');
  t.is((await d.docker(['logout', reg.host])).code, 0);
});

test.serial('--cache-from an image loaded from docker save into a fresh daemon: every step hits by history and layers, to the same image id; a changed file re-runs from its step', async (t) => {
  const dir = context('cachefrom', {
    Dockerfile: ['FROM busybox', 'ENV A=1', 'WORKDIR /app', 'COPY f.txt .', 'RUN date +%s%N > /stamp', 'RUN true', 'CMD ["cat", "/stamp"]', ''].join('\n'),
    'f.txt': 'f\n',
  });
  const built = await on(d, ['build', '-t', 'cachefrom:1', dir]);
  t.is(built.code, 0, built.stderr);
  const tarFile = path.join(work, 'cachefrom.tar');
  // busybox too: berth makes its own on each host, and a different base is (rightly) no hit.
  t.is((await on(d, ['save', '-o', tarFile, 'busybox', 'cachefrom:1'])).code, 0);
  const src = JSON.parse((await on(d, ['image', 'inspect', 'cachefrom:1'])).stdout)[0];

  const fresh = await TestDaemon.start();
  t.teardown(() => fresh.stop());
  t.is((await on(fresh, ['load', '-i', tarFile])).code, 0);

  // The loaded image has no parent chain here: without --cache-from nothing hits.
  const plain = await on(fresh, ['build', dir]);
  t.is(plain.code, 0, plain.stderr);
  t.notRegex(plain.stdout, /Using cache/);

  const cached = await on(fresh, ['build', '--cache-from', 'cachefrom:1', '-t', 'cachefrom:2', dir]);
  t.is(cached.code, 0, cached.stderr);
  t.is(cached.stdout.match(/Using cache/g)?.length, 6, cached.stdout);
  t.notRegex(cached.stdout, /Running in/);
  const img = JSON.parse((await on(fresh, ['image', 'inspect', 'cachefrom:2'])).stdout)[0];
  t.is(img.Id, src.Id, 'the last step is the cache-from image itself');
  t.deepEqual(img.RootFS.Layers, src.RootFS.Layers);
  t.is((await on(fresh, ['run', '--rm', 'cachefrom:2'])).stdout, (await on(d, ['run', '--rm', 'cachefrom:1'])).stdout);
  // The steps before the last are images made of the source's history and layers.
  const hist = (await on(fresh, ['history', '-q', 'cachefrom:2'])).stdout.trim().split('\n');
  t.false(hist.includes('<missing>'), hist.join(' '));

  fs.writeFileSync(path.join(dir, 'f.txt'), 'changed\n');
  const changed = await on(fresh, ['build', '--cache-from', 'cachefrom:1', dir]);
  t.is(changed.code, 0, changed.stderr);
  const steps = changed.stdout.split(/^Step /m).slice(1);
  t.deepEqual(
    steps.map((s) => /Using cache/.test(s)),
    [false, true, true, false, false, false, false],
    changed.stdout,
  );
});
