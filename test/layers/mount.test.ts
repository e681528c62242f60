import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compactOptions, isMountPoint, mountAll, unmountAll } from '../../volumes/layers/mount';

/** A temp dir with `src/` (holding a file) and `dst/`; torn down without leaving mounts. */
async function dirs(t: ExecutionContext): Promise<{ src: string; dst: string }> {
  const base = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-mount-'));
  const src = path.join(base, 'src');
  const dst = path.join(base, 'dst');
  await fs.promises.mkdir(src);
  await fs.promises.mkdir(dst);
  await fs.promises.writeFile(path.join(src, 'f'), 'f');
  t.teardown(async () => {
    await unmountAll(dst);
    if (await isMountPoint(dst)) throw new Error(`${dst} still mounted; not deleting ${base}`);
    await fs.promises.rm(base, { recursive: true, force: true });
  });
  return { src, dst };
}

test('mountAll stacks mounts and unmountAll takes all of them off', async (t) => {
  const { src, dst } = await dirs(t);
  const bind = { type: 'bind', source: src, options: ['ro', 'rbind'] };
  await mountAll([bind, bind], dst);
  t.true(await isMountPoint(dst));
  t.is(await fs.promises.readFile(path.join(dst, 'f'), 'utf8'), 'f');
  await t.throwsAsync(fs.promises.writeFile(path.join(dst, 'g'), 'g'), { code: 'EROFS' });
  await unmountAll(dst);
  t.false(await isMountPoint(dst));
  await t.notThrowsAsync(unmountAll(dst), 'unmounting what is not mounted is harmless');
});

test('a mount that fails undoes the ones before it', async (t) => {
  const { src, dst } = await dirs(t);
  const bind = { type: 'bind', source: src, options: ['rbind'] };
  const broken = { type: 'overlay', source: 'overlay', options: [`lowerdir=${src}/missing:${src}`] };
  await t.throwsAsync(mountAll([bind, broken], dst), { code: 'NOT_FOUND' });
  t.false(await isMountPoint(dst));
});

test('mountAll on a missing mount point fails with NOT_FOUND', async (t) => {
  const { src, dst } = await dirs(t);
  await t.throwsAsync(mountAll([{ type: 'bind', source: src, options: ['rbind'] }], path.join(dst, 'nope')), { code: 'NOT_FOUND' });
});

test('an unknown filesystem type fails with FAILED_PRECONDITION and a hint', async (t) => {
  const { dst } = await dirs(t);
  // Not 'nosuchfs': mount(8) reads a type starting with "no" as "not this type".
  const err = await t.throwsAsync(mountAll([{ type: 'bogusfs', source: 'x', options: ['ro'] }], dst), { code: 'FAILED_PRECONDITION' });
  t.truthy((err as { hint?: string } | undefined)?.hint);
});

test('unmountAll refuses a busy mount with CONFLICT instead of detaching it lazily', async (t) => {
  const { src, dst } = await dirs(t);
  await mountAll([{ type: 'bind', source: src, options: ['rbind'] }], dst);
  const fh = await fs.promises.open(path.join(dst, 'f'), 'r');
  try {
    await t.throwsAsync(unmountAll(dst), { code: 'CONFLICT' });
    t.true(await isMountPoint(dst), 'still mounted, not detached');
  } finally {
    await fh.close();
  }
  await unmountAll(dst);
  t.false(await isMountPoint(dst));
});

test('compactOptions rewrites layer paths relative to their common parent', (t) => {
  const opts = ['index=off', 'lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs', 'upperdir=/r/snapshots/3/fs', 'workdir=/r/snapshots/3/work'];
  t.deepEqual(compactOptions(opts), {
    cwd: '/r/snapshots',
    options: ['index=off', 'lowerdir=2/fs:1/fs', 'upperdir=3/fs', 'workdir=3/work'],
  });
  t.deepEqual(compactOptions(['lowerdir=/a/x:/b/y']), { options: ['lowerdir=/a/x:/b/y'] }, 'nothing in common but /');
});
