import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, listTree, exec } from '../helpers/daemon';
import { mountsUnder } from '../helpers/mounts';
import { crashAt } from '../helpers/fault';

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
  // 8 MB of incompressible data.
  for (let i = 0; i < 2; i++) await exec('dd', ['if=/dev/urandom', `of=${path.join(src, 'data', `f${i}`)}`, 'bs=1M', 'count=4', 'status=none']);
  const tar = path.join(dir, 'big.tar');
  await exec('tar', ['-C', src, '-cf', tar, '.']);
  fs.rmSync(src, { recursive: true });
  return tar;
}

/** What the image store holds on disk right now: blobs being written, blobs, and snapshots by key or name. */
function onDisk(root: string): { ingest: string[]; blobs: string[]; snapshots: string[] } {
  const meta = JSON.parse(fs.readFileSync(path.join(root, 'layers', 'overlay', 'metadata.json'), 'utf8')) as { snapshots?: Record<string, unknown> };
  const all = listTree(path.join(root, 'images', 'content'));
  return {
    ingest: all.filter((p) => /^ingest\/./.test(p)),
    blobs: all.filter((p) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(p)),
    snapshots: Object.keys(meta.snapshots ?? {}),
  };
}

/** Where an import or load can die, and what each step has left on disk by then. */
const STEPS: Array<{ step: string; left: (d: ReturnType<typeof onDisk>) => boolean; what: string }> = [
  { step: 'content.blob.synced', left: (d) => d.ingest.length > 0, what: 'a whole blob still in ingest' },
  { step: 'image.layer.applied', left: (d) => d.snapshots.some((s) => s.startsWith('extract-')), what: 'an unpacked, uncommitted extract snapshot' },
  { step: 'image.before-record', left: (d) => d.blobs.length > 0 && d.snapshots.some((s) => s.startsWith('sha256:')), what: 'blobs and committed layers no image names' },
];

test('SIGKILL of an import at each of its steps leaves no half image, and the same import then succeeds', async (t) => {
  const d = await TestDaemon.start({ images: [] }); // asserts the root holds no image
  t.teardown(() => d.stop());
  const tar = await bigRootfs(d.root + '-work');
  t.teardown(() => fs.promises.rm(d.root + '-work', { recursive: true, force: true }));

  for (const { step, left, what } of STEPS) {
    await crashAt(d, step, () => d.images.importRootfs(fs.createReadStream(tar), { repo: 'big:1' }), () => {
      t.true(left(onDisk(d.root)), `${step}: the crash left ${what}`);
    });
    t.deepEqual(await d.images.list({ all: true }), [], step);
    t.deepEqual(leftovers(d.root), [], `${step}: restart cleaned it`);
    t.deepEqual(mountsUnder(d.root), [], step);
  }

  const r = await d.berth(['import', tar, 'big:1']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual((await d.images.list()).map((i) => i.RepoTags), [['big:1']]);
});

test('SIGKILL of a load at each of its steps leaves no half image, and the same load then succeeds', async (t) => {
  const d = await TestDaemon.start({ images: [] }); // asserts the root holds no image
  t.teardown(() => d.stop());
  const work = d.root + '-work';
  t.teardown(() => fs.promises.rm(work, { recursive: true, force: true }));
  const tar = await bigRootfs(work);
  t.is((await d.berth(['import', tar, 'big:1'])).code, 0);
  const saved = path.join(work, 'saved.tar');
  t.is((await d.berth(['save', '-o', saved, 'big:1'])).code, 0);
  t.is((await d.berth(['rmi', 'big:1'])).code, 0);
  t.deepEqual(leftovers(d.root), [], 'rmi removed every blob and layer');

  for (const { step, left, what } of STEPS) {
    await crashAt(d, step, () => d.images.load(fs.createReadStream(saved)), () => {
      t.true(left(onDisk(d.root)), `${step}: the crash left ${what}`);
    });
    t.deepEqual(await d.images.list({ all: true }), [], step);
    t.deepEqual(leftovers(d.root), [], `${step}: restart cleaned it`);
    t.deepEqual(mountsUnder(d.root), [], step);
  }

  const r = await d.berth(['load', '-i', saved]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Loaded image: big:1/);
});
