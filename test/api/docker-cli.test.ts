import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, exec, useDaemon } from '../helpers/daemon';

/**
 * The real docker CLI (the client only: no Docker engine runs here) against berthd.
 * DOCKER_HOST points it at the test daemon's socket. One daemon serves the file; each test
 * names its images with its own tag.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(() => d?.stop());

async function rootfsTar(dir: string): Promise<string> {
  const src = path.join(dir, 'rootfs');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc', 'hello'), 'hello from a rootfs\n');
  fs.copyFileSync('/bin/busybox', path.join(src, 'bin', 'busybox'));
  fs.symlinkSync('busybox', path.join(src, 'bin', 'sh'));
  const tar = path.join(dir, 'rootfs.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  return tar;
}

test('docker version and docker info talk to berthd', async (t) => {
  useDaemon(t, d);
  const v = await d.docker(['version', '--format', '{{json .Server}}']);
  t.is(v.code, 0, v.stderr);
  const server = JSON.parse(v.stdout);
  t.is(server.APIVersion ?? server.ApiVersion, '1.41');
  t.is(server.Platform.Name, 'berth');
  const i = await d.docker(['info', '--format', '{{.Driver}} {{.DockerRootDir}}']);
  t.is(i.code, 0, i.stderr);
  t.is(i.stdout.trim(), `overlayfs ${d.root}`);
  const plain = await d.docker(['info']);
  t.is(plain.code, 0, plain.stderr);
  t.regex(plain.stdout, /Server Version: 0\.1\.0/);
});

test('docker import, images, tag, save, rmi, load round trip through berthd', async (t) => {
  const { tag } = useDaemon(t, d);
  const dir = fs.mkdtempSync(path.join(d.root, 'import-'));
  t.teardown(() => fs.promises.rm(dir, { recursive: true, force: true }));
  const tar = await rootfsTar(dir);
  const mine = `mine-${tag}:1`;
  const pushed = `localhost:5000/team/mine-${tag}:v2`;

  const imp = await d.docker(['import', '--change', 'CMD ["/bin/sh"]', tar, mine]);
  t.is(imp.code, 0, imp.stderr);
  const id = imp.stdout.trim();
  t.regex(id, /^sha256:[0-9a-f]{64}$/);

  const imgs = await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  t.is(imgs.code, 0, imgs.stderr);
  t.true(imgs.stdout.split('\n').includes(`${mine} ${id.slice(7, 19)}`), imgs.stdout);

  const insp = await d.docker(['image', 'inspect', '--format', '{{json .Config.Cmd}}', mine]);
  t.is(insp.code, 0, insp.stderr);
  t.deepEqual(JSON.parse(insp.stdout), ['/bin/sh']);

  t.is((await d.docker(['tag', mine, pushed])).code, 0);
  const tagged = await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']);
  t.true(tagged.stdout.includes(pushed), tagged.stdout);

  const out = path.join(dir, 'saved.tar');
  const save = await d.docker(['save', '-o', out, mine]);
  t.is(save.code, 0, save.stderr);
  t.true(fs.statSync(out).size > 1_000_000);

  const rmi = await d.docker(['rmi', mine, pushed]);
  t.is(rmi.code, 0, rmi.stderr);
  t.regex(rmi.stdout, new RegExp(`Untagged: ${mine}`));
  t.regex(rmi.stdout, new RegExp(`Deleted: ${id}`));
  t.false((await d.docker(['images', '--format', '{{.ID}}'])).stdout.includes(id.slice(7, 19)));

  const load = await d.docker(['load', '-i', out]);
  t.is(load.code, 0, load.stderr);
  t.regex(load.stdout, new RegExp(`Loaded image: ${mine}`));
  const back = await d.docker(['image', 'inspect', '--format', '{{.Id}}', mine]);
  t.is(back.stdout.trim(), id, 'the same image id after save and load');
});

test('docker sees berth errors: unknown image, bad name', async (t) => {
  useDaemon(t, d);
  const r = await d.docker(['image', 'inspect', 'nosuchimage']);
  t.not(r.code, 0);
  t.regex(r.stderr, /nosuchimage/);
  // An invalid reference (upper case is not allowed in a repository name) is refused as
  // such by berthd, not looked up and reported missing.
  const bad = await d.docker(['rmi', 'Bad/Name:tag']);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /invalid reference format/i, bad.stderr);
  t.notRegex(bad.stderr, /no such image/i, 'a bad name is not a missing image');
});
