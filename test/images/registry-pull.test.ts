import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry } from '../helpers/registry';

/**
 * Pull from a real registry (Debian's docker-registry, distribution 2.8) on loopback over
 * plain HTTP, with images put there by skopeo: the docker CLI and berth's own pull against
 * berthd. One daemon and one registry for the file; the tests run one after another.
 */

let d: TestDaemon;
let reg: TestRegistry;
/** An image made in berth (busybox + one committed layer), its id, and the registry name skopeo pushed it as. */
let made: { id: string; name: string };

test.before(async () => {
  [d, reg] = await Promise.all([TestDaemon.start(), TestRegistry.start()]);
  const run = await d.docker(['run', '--name', 'maker', 'busybox', 'sh', '-c', 'echo pulled-content > /hello && mkdir -p /data && seq 1 20000 > /data/seq']);
  if (run.code !== 0) throw new Error(run.stderr);
  const commit = await d.docker(['commit', 'maker', 'made:v1']);
  if (commit.code !== 0) throw new Error(commit.stderr);
  await d.docker(['rm', 'maker']);
  const id = (await d.docker(['inspect', '--format', '{{.Id}}', 'made:v1'])).stdout.trim();
  const archive = path.join(d.root, 'made.tar');
  const save = await d.docker(['save', '-o', archive, 'made:v1']);
  if (save.code !== 0) throw new Error(save.stderr);
  const name = `${reg.host}/test/made:v1`;
  await exec('skopeo', ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${name}`]);
  fs.rmSync(archive);
  const rmi = await d.docker(['rmi', 'made:v1']);
  if (rmi.code !== 0) throw new Error(rmi.stderr);
  made = { id, name };
});

test.after.always(async () => {
  await Promise.all([d?.stop(), reg?.stop()]);
});

test.serial('docker pull of an image skopeo pushed gives the same image id, its progress and RepoDigests', async (t) => {
  const pull = await d.docker(['pull', made.name]);
  t.is(pull.code, 0, pull.stderr + d.log());
  t.regex(pull.stdout, /Pull complete/);
  t.regex(pull.stdout, /Digest: sha256:[0-9a-f]{64}/);
  t.regex(pull.stdout, /Status: Downloaded newer image for/);
  const inspect = JSON.parse((await d.docker(['inspect', made.name])).stdout)[0];
  t.is(inspect.Id, made.id);
  const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(pull.stdout)![1];
  t.deepEqual(inspect.RepoDigests, [`${reg.host}/test/made@${digest}`]);
  const out = await d.docker(['run', '--rm', made.name, 'cat', '/hello']);
  t.is(out.stdout.trim(), 'pulled-content', out.stderr);

  const again = await d.docker(['pull', made.name]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /Image is up to date/);
});
