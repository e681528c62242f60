import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { TestDaemon, listTree, exec } from '../helpers/daemon';
import { mountsUnder } from '../helpers/mounts';

/** What a crashed import or load could leave: blobs, snapshots, ingest or temp files. */
function leftovers(root: string): string[] {
  return listTree(root).filter(
    (p) => /\/blobs\/sha256\/./.test(p) || /(^|\/)snapshots\/./.test(p) || /(^|\/)ingest\/./.test(p) || /^tmp\/./.test(p) || /(^|\/)(new|rm)-/.test(p),
  );
}

async function bigRootfs(dir: string): Promise<string> {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'data'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(src, 'busybox'));
  // 48 MB of incompressible data: long enough to be killed in the middle.
  for (let i = 0; i < 6; i++) await exec('dd', ['if=/dev/urandom', `of=${path.join(src, 'data', `f${i}`)}`, 'bs=1M', 'count=8', 'status=none']);
  const tar = path.join(dir, 'big.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  fs.rmSync(src, { recursive: true });
  return tar;
}

/** Send the first `fraction` of `file` as the body of `send`, then SIGKILL the daemon mid-transfer. */
async function killMidway(d: TestDaemon, file: string, fraction: number, send: (body: PassThrough) => Promise<unknown>): Promise<void> {
  const body = new PassThrough();
  const pending = send(body).catch(() => undefined);
  const data = fs.readFileSync(file);
  body.write(data.subarray(0, Math.floor(data.length * fraction)));
  // Let the daemon write some of it to disk before the crash.
  await new Promise((r) => setTimeout(r, 700));
  await d.kill();
  body.destroy();
  await pending;
}

test('SIGKILL in the middle of an import leaves no half image, and the same import then succeeds', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const tar = await bigRootfs(d.root + '-work');
  t.teardown(() => fs.promises.rm(d.root + '-work', { recursive: true, force: true }));

  await killMidway(d, tar, 0.6, (body) => d.images.importRootfs(body, { repo: 'big:1' }));
  await d.restart();
  t.deepEqual(await d.images.list({ all: true }), []);
  t.deepEqual(leftovers(d.root), []);
  t.deepEqual(mountsUnder(d.root), []);

  const r = await d.berth(['import', tar, 'big:1']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual((await d.images.list()).map((i) => i.RepoTags), [['big:1']]);
});

test('SIGKILL in the middle of a load leaves no half image, and the same load then succeeds', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const work = d.root + '-work';
  t.teardown(() => fs.promises.rm(work, { recursive: true, force: true }));
  const tar = await bigRootfs(work);
  t.is((await d.berth(['import', tar, 'big:1'])).code, 0);
  const saved = path.join(work, 'saved.tar');
  t.is((await d.berth(['save', '-o', saved, 'big:1'])).code, 0);
  t.is((await d.berth(['rmi', 'big:1'])).code, 0);
  t.deepEqual(leftovers(d.root), [], 'rmi removed every blob and layer');

  await killMidway(d, saved, 0.7, (body) => d.images.load(body));
  await d.restart();
  t.deepEqual(await d.images.list({ all: true }), []);
  t.deepEqual(leftovers(d.root), []);
  t.deepEqual(mountsUnder(d.root), []);

  const r = await d.berth(['load', '-i', saved]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Loaded image: big:1/);
});
