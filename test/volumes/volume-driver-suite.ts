import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ExecutionContext, TestFn } from 'ava';
import type { VolumeDriver } from '../../volumes/drivers/driver';
import { lockKey } from '../../volumes/drivers/base/locks';
import { describeTree, snapshot as treeSnapshot } from '../archive/helpers';
import { sha256 } from '../helpers/digest';
import { eventually } from '../helpers/eventually';
import { Env, ls, MiB, random, readFile, setup, volumesDirOf, writeFile } from './helpers';
import { collect, makeTar } from '../helpers/tar';
import { stdoutOf } from '../helpers/proc';

/**
 * The volume driver conformance suite, after containerd's `SnapshotterSuite(t, name,
 * factory)`: every VolumeDriver (btrfs, dir, and any wrapper or fake) must pass it
 * unchanged. Each case gets a fresh temp dir: `root/` (given to `factory`) and `outside/`
 * (a canary that hostile tars aim at). Everything is real: real files, real cp and btrfs,
 * real tars. The teardown closes the case's drivers and removes any mount or loop device
 * left under its temp dir, even when the case failed.
 *
 * Two cases ("crash leftovers", "crash during restore") plant debris by hand, so they
 * assume the layout of volumes/drivers/base/volume-store.ts: `<data>/volumes/<name>/{_data,snapshots}`,
 * `<data>/staging/{new,rm}-<key>-*`, `snapshots/.{new,rm}-*`, records in
 * `<root>/meta/<name>/volume.json`.
 *
 * `child`, when given, names how a second process opens the same root (openDriver options),
 * for the cross-process locking case.
 */
export function volumeDriverSuite(
  test: TestFn,
  name: string,
  factory: (root: string) => Promise<VolumeDriver>,
  child?: { driver: 'btrfs' | 'dir'; poolSize?: number },
): void {
  const it = (title: string, fn: (t: ExecutionContext, env: Env) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => fn(t, await setup(t, factory)));
  };

  it('create, inspect, list and remove a volume', async (t, { d }) => {
    const info = await d.create('data1', { labels: { app: 'db' } });
    t.like(info, { name: 'data1', driver: d.name, labels: { app: 'db' }, snapshots: 0 });
    t.false(Number.isNaN(Date.parse(info.created)));
    t.true(fs.statSync(info.mountpoint).isDirectory(), 'the mountpoint is a directory to bind-mount');
    t.deepEqual(await fsp.readdir(info.mountpoint), [], 'a new volume is empty');
    t.is(await d.mountpoint('data1'), info.mountpoint);
    t.deepEqual(await d.inspect('data1'), info);
    await d.create('data2');
    t.deepEqual((await d.list()).map((v) => v.name), ['data1', 'data2']);
    await t.throwsAsync(d.create('data1'), { code: 'ALREADY_EXISTS' });
    await writeFile(info.mountpoint, 'f', 'x');
    await d.remove('data1');
    t.false(fs.existsSync(info.mountpoint), 'its files are gone');
    await t.throwsAsync(d.inspect('data1'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.mountpoint('data1'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.remove('data1'), { code: 'NOT_FOUND' });
    t.deepEqual((await d.list()).map((v) => v.name), ['data2']);
    const again = await d.create('data1');
    t.deepEqual(await fsp.readdir(again.mountpoint), [], 'the name can be used again, and starts empty');
  });

  it("names follow Docker's volume name rule, for volumes and snapshots", async (t, { d }) => {
    const bad = ['x', '', '/v', './v', '.v', '..', '.', '-v', '_v', 'a/b', 'a\0b', 'ü-v', 'a b', 'v'.repeat(256)];
    for (const n of bad) {
      await t.throwsAsync(d.create(n), { code: 'INVALID_ARGUMENT' }, `create ${JSON.stringify(n)}`);
    }
    const good = ['ab', 'A_b.c-1', '0.0', 'v'.repeat(255), 'new-x', 'rm-x'];
    for (const n of good) await d.create(n);
    t.deepEqual((await d.list()).map((v) => v.name), [...good].sort());
    for (const n of bad) {
      await t.throwsAsync(d.snapshot('ab', n), { code: 'INVALID_ARGUMENT' }, `snapshot ${JSON.stringify(n)}`);
      await t.throwsAsync(d.clone('ab', undefined, n), { code: 'INVALID_ARGUMENT' }, `clone to ${JSON.stringify(n)}`);
    }
    await t.throwsAsync(d.inspect('../x'), { code: 'INVALID_ARGUMENT' });
    await t.throwsAsync(d.restore('ab', '..'), { code: 'INVALID_ARGUMENT' });
    await t.throwsAsync(d.import('.hidden', Readable.from([Buffer.alloc(1024)])), { code: 'INVALID_ARGUMENT' });
    await d.snapshot('ab', 'v'.repeat(255));
    await d.snapshot('ab', 'new-1');
    t.deepEqual((await d.snapshots('ab')).map((s) => s.name).sort(), ['new-1', 'v'.repeat(255)]);
    const err = await t.throwsAsync(d.create('x'));
    t.truthy((err as { hint?: string }).hint, 'the error says what a name may be');
  });

  it('bad labels, sizes and snapshot metadata are refused', async (t, { d }) => {
    await t.throwsAsync(d.create('ab', { labels: { k: 1 } as never }), { code: 'INVALID_ARGUMENT' });
    await t.throwsAsync(d.create('ab', { labels: { '': 'v' } }), { code: 'INVALID_ARGUMENT' });
    await t.throwsAsync(d.create('ab', { size: -1 }), { code: 'INVALID_ARGUMENT' });
    await t.throwsAsync(d.create('ab', { size: 1.5 }), { code: 'INVALID_ARGUMENT' });
    await d.create('ab');
    await t.throwsAsync(d.snapshot('ab', 's1', { metadata: [] as never }), { code: 'INVALID_ARGUMENT' });
    await t.throwsAsync(d.snapshot('ab', 's1', { metadata: { big: 'x'.repeat(70_000) } }), { code: 'INVALID_ARGUMENT' });
    t.deepEqual(await d.snapshots('ab'), [], 'nothing was made');
    t.deepEqual((await d.list()).map((v) => v.name), ['ab']);
  });

  it('data, labels and snapshots survive close and reopen', async (t, env) => {
    const { d } = env;
    const info = await d.create('keep', { labels: { a: 'b' } });
    await writeFile(info.mountpoint, 'dir/file', 'persist\n');
    await fsp.chmod(path.join(info.mountpoint, 'dir/file'), 0o640);
    await fsp.chown(path.join(info.mountpoint, 'dir/file'), 1234, 5678);
    await d.snapshot('keep', 'snap1', { metadata: { consistency: 'crash' } });
    const before = await describeTree(info.mountpoint);
    await d.close();
    const d2 = await env.open();
    t.deepEqual(await d2.inspect('keep'), { ...info, snapshots: 1 });
    t.deepEqual(await describeTree(await d2.mountpoint('keep')), before);
    t.like((await d2.snapshots('keep'))[0], { name: 'snap1', volume: 'keep', metadata: { consistency: 'crash' } });
  });

  it('a snapshot is a point in time: later writes are not in it', async (t, env) => {
    const { d } = env;
    const mp = (await d.create('pit')).mountpoint;
    await writeFile(mp, 'a', 'one');
    await writeFile(mp, 'keep', 'same');
    const snap = await d.snapshot('pit', 's1');
    t.like(snap, { volume: 'pit', name: 's1', metadata: {} });
    t.false(Number.isNaN(Date.parse(snap.created)));
    await writeFile(mp, 'a', 'two');
    await writeFile(mp, 'b', 'new');
    await fsp.rm(path.join(mp, 'keep'));
    const copy = await importExport(d, 'pit', 's1', 'pit-at-s1');
    t.deepEqual(await ls(copy), ['a', 'keep']);
    t.is(await readFile(copy, 'a'), 'one');
    t.is(await readFile(mp, 'a'), 'two', 'the volume keeps its own writes');
    await t.throwsAsync(d.snapshot('pit', 's1'), { code: 'ALREADY_EXISTS' });
  });

  it('restore brings back exactly the snapshot, in place, and keeps older and newer snapshots', async (t, { d }) => {
    const mp = (await d.create('db')).mountpoint;
    await writeFile(mp, 'v', '1');
    await d.snapshot('db', 'older');
    await writeFile(mp, 'v', '2');
    await writeFile(mp, 'tables/t1', random(300_000));
    await fsp.symlink('tables/t1', path.join(mp, 'link'));
    await fsp.link(path.join(mp, 'v'), path.join(mp, 'v-hard'));
    await fsp.chown(path.join(mp, 'tables'), 70, 70);
    const atChosen = await describeTree(mp);
    await d.snapshot('db', 'chosen', { metadata: { n: 2 } });
    await writeFile(mp, 'v', '3');
    await writeFile(mp, 'tables/t2', 'new table');
    await fsp.rm(path.join(mp, 'link'));
    await d.snapshot('db', 'newer');
    await writeFile(mp, 'after-newer', 'x');

    await d.restore('db', 'chosen');
    t.is(await d.mountpoint('db'), mp, 'the mountpoint is the same path');
    t.deepEqual(await describeTree(mp), atChosen, 'exactly the files of the snapshot (content, modes, owners, links)');
    t.deepEqual((await d.snapshots('db')).map((s) => s.name), ['older', 'chosen', 'newer']);
    t.is((await d.inspect('db')).snapshots, 3);

    await writeFile(mp, 'v', 'written after restore');
    t.is(await readFile(await importExport(d, 'db', 'chosen', 'check1'), 'v'), '2', 'the snapshot is not written through the restored volume');
    await d.restore('db', 'newer');
    t.is(await readFile(mp, 'v'), '3');
    t.is(await readFile(mp, 'tables/t2'), 'new table');
    t.false(fs.existsSync(path.join(mp, 'after-newer')));
    await d.restore('db', 'older');
    t.deepEqual(await ls(mp), ['v']);
    t.is(await readFile(mp, 'v'), '1');
    t.deepEqual(await ls(path.dirname(mp)), ['_data', 'snapshots'], 'nothing left over from the swaps');
  });

  it('restore to a snapshot of another volume, or a missing one, is NOT_FOUND and changes nothing', async (t, { d }) => {
    const a = (await d.create('vol-a')).mountpoint;
    const b = (await d.create('vol-b')).mountpoint;
    await writeFile(a, 'f', 'a');
    await writeFile(b, 'f', 'b');
    await d.snapshot('vol-a', 'only-a');
    await t.throwsAsync(d.restore('vol-b', 'only-a'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.restore('vol-b', 'nope'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.restore('nope', 'only-a'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.removeSnapshot('vol-b', 'only-a'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.clone('vol-b', 'only-a', 'c1'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.export('vol-b', 'only-a'), { code: 'NOT_FOUND' });
    t.is(await readFile(b, 'f'), 'b');
    t.deepEqual(await d.snapshots('vol-b'), []);
    await d.snapshot('vol-b', 'only-a'); // snapshot names are per volume
    t.deepEqual((await d.snapshots('vol-a')).map((s) => s.name), ['only-a']);
  });

  it('operations on a missing volume are NOT_FOUND', async (t, { d }) => {
    await t.throwsAsync(d.snapshot('ghost', 's1'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.snapshots('ghost'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.usage('ghost'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.export('ghost'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.clone('ghost', undefined, 'c1'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.updateSnapshot('ghost', 's1', {}), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.removeSnapshot('ghost', 's1'), { code: 'NOT_FOUND' });
    t.deepEqual(await d.list(), []);
  });

  it('snapshot metadata is stored, listed with a measured size, and can be replaced', async (t, env) => {
    const { d } = env;
    const mp = (await d.create('meta')).mountpoint;
    await writeFile(mp, 'f', random(200_000));
    const md = { consistency: 'frozen', containers: ['web', 'db'], hooks: { pre: { exit: 0 } }, ok: true, n: null };
    const s = await d.snapshot('meta', 's1', { metadata: md });
    t.deepEqual(s.metadata, md);
    const [listed] = await d.snapshots('meta');
    t.deepEqual(listed.metadata, md);
    t.true((listed.size ?? 0) >= 200_000, 'size counts the files of the snapshot');
    const updated = await d.updateSnapshot('meta', 's1', { consistency: 'app', note: 'checked' });
    t.deepEqual(updated.metadata, { consistency: 'app', note: 'checked' });
    await t.throwsAsync(d.updateSnapshot('meta', 'nope', {}), { code: 'NOT_FOUND' });
    await d.close();
    const d2 = await env.open();
    const [again] = await d2.snapshots('meta');
    t.deepEqual(again.metadata, { consistency: 'app', note: 'checked' });
    t.is(again.size, listed.size);
    t.is(again.created, s.created);
  });

  it('removeSnapshot deletes one snapshot and keeps the rest', async (t, { d }) => {
    const mp = (await d.create('rs')).mountpoint;
    await writeFile(mp, 'f', '1');
    await d.snapshot('rs', 's1');
    await d.snapshot('rs', 's2');
    await d.removeSnapshot('rs', 's1');
    t.deepEqual((await d.snapshots('rs')).map((s) => s.name), ['s2']);
    await t.throwsAsync(d.removeSnapshot('rs', 's1'), { code: 'NOT_FOUND' });
    await t.throwsAsync(d.restore('rs', 's1'), { code: 'NOT_FOUND' });
    t.deepEqual(await ls(path.join(path.dirname(mp), 'snapshots')), ['s2']);
    await d.snapshot('rs', 's1'); // the name is free again
    t.is(await readFile(mp, 'f'), '1', 'the volume itself is untouched');
  });

  it('a clone is independent of its source, both ways', async (t, { d }) => {
    const src = (await d.create('src', { labels: { team: 'a' } })).mountpoint;
    await writeFile(src, 'shared', 'original');
    await writeFile(src, 'big', random(1_000_000));
    const clone = await d.clone('src', undefined, 'copy');
    t.like(clone, { name: 'copy', labels: { team: 'a' }, snapshots: 0, origin: { volume: 'src' } });
    t.not(clone.mountpoint, src);
    t.deepEqual(await describeTree(clone.mountpoint), await describeTree(src));
    await writeFile(src, 'shared', 'changed in source');
    await writeFile(clone.mountpoint, 'only-in-clone', 'x');
    await writeFile(clone.mountpoint, 'big', 'rewritten in clone');
    t.is(await readFile(clone.mountpoint, 'shared'), 'original');
    t.false(fs.existsSync(path.join(src, 'only-in-clone')));
    t.is((await fsp.stat(path.join(src, 'big'))).size, 1_000_000);
    await d.remove('src');
    t.is(await readFile(clone.mountpoint, 'shared'), 'original', 'the clone outlives its source');
    await t.throwsAsync(d.clone('copy', undefined, 'copy'), { code: 'ALREADY_EXISTS' });
    const labelled = await d.clone('copy', undefined, 'copy2', { labels: { other: 'y' } });
    t.deepEqual(labelled.labels, { other: 'y' });
  });

  it('a clone from a snapshot holds the snapshot, not the live volume', async (t, { d }) => {
    const mp = (await d.create('base')).mountpoint;
    await writeFile(mp, 'f', 'at snapshot');
    await d.snapshot('base', 'snap');
    await writeFile(mp, 'f', 'later');
    await writeFile(mp, 'later-file', 'x');
    const c = await d.clone('base', 'snap', 'from-snap');
    t.deepEqual(c.origin, { volume: 'base', snapshot: 'snap' });
    t.deepEqual(await ls(c.mountpoint), ['f']);
    t.is(await readFile(c.mountpoint, 'f'), 'at snapshot');
    await writeFile(c.mountpoint, 'f', 'clone writes');
    t.is(await readFile(await importExport(d, 'base', 'snap', 'verify'), 'f'), 'at snapshot', 'the snapshot stays read-only');
    t.deepEqual(await d.snapshots('from-snap'), []);
    await t.throwsAsync(d.clone('base', 'snap', 'from-snap'), { code: 'ALREADY_EXISTS' });
    await t.throwsAsync(d.clone('base', 'nope', 'other'), { code: 'NOT_FOUND' });
    await d.remove('base', { force: true });
    t.is(await readFile(c.mountpoint, 'f'), 'clone writes', 'the clone outlives the snapshot and its volume');
  });

  it('a large file changed in part travels as its changed blocks; xattrs, sparse files, hardlinks and owners survive export, import and changesets', async (t, { d }) => {
    const mp = (await d.create('src')).mountpoint;
    const pages = random(8 * MiB); // a database file of 8 KiB pages
    await writeFile(mp, 'pg/base/16384', pages);
    await writeFile(mp, 'appendonly.aof', random(2 * MiB));
    await writeFile(mp, 'shrinks.bin', random(4 * MiB));
    await writeFile(mp, 'tagged', 'has xattrs');
    await fsp.link(path.join(mp, 'tagged'), path.join(mp, 'tagged-link'));
    await fsp.chown(path.join(mp, 'tagged'), 70, 71);
    await fsp.symlink('tagged', path.join(mp, 'sym'));
    stdoutOf('setfattr', ['-n', 'user.origin', '-v', 'berth-test', path.join(mp, 'tagged')]);
    stdoutOf('setfattr', ['-n', 'user.dir', '-v', 'pg', path.join(mp, 'pg')]);
    // 64 MiB with 1 MiB of data in the middle: holes on both sides.
    const sparse = path.join(mp, 'sparse.img');
    const sfd = fs.openSync(sparse, 'w');
    fs.writeSync(sfd, random(MiB), 0, MiB, 32 * MiB);
    fs.ftruncateSync(sfd, 64 * MiB);
    fs.closeSync(sfd);
    await d.snapshot('src', 's1');
    const full = await collect(await d.export('src', 's1'));
    const dst = (await d.import('dst', Readable.from([full]))).mountpoint;
    await d.snapshot('dst', 's1');
    const same = async (what: string) => {
      t.deepEqual(await describeTree(dst), await describeTree(mp), `${what}: the same tree`);
      t.deepEqual(xattrsOf(dst), xattrsOf(mp), `${what}: the same user xattrs`);
      t.true(fs.statSync(path.join(dst, 'sparse.img')).blocks * 512 <= 4 * MiB, `${what}: the sparse file stays sparse`);
    };
    await same('a full export and import');

    // PostgreSQL-style: 16 pages rewritten in place; a Redis AOF appended to; a file cut short.
    const fd = fs.openSync(path.join(mp, 'pg/base/16384'), 'r+');
    for (let i = 0; i < 16; i++) fs.writeSync(fd, random(8192), 0, 8192, (i * 61 + 7) * 8192);
    fs.closeSync(fd);
    fs.appendFileSync(path.join(mp, 'appendonly.aof'), random(100 * 1024));
    fs.truncateSync(path.join(mp, 'shrinks.bin'), 3 * MiB + 100);
    stdoutOf('setfattr', ['-n', 'user.origin', '-v', 'changed', path.join(mp, 'tagged')]);
    await d.snapshot('src', 's2');
    const delta = await collect(await d.exportChanges('src', 's2', 's1'));
    t.true(delta.length < 512 * 1024, `16 pages, a 100 KiB append and a cut make a changeset of ${delta.length} bytes, not 14 MiB`);
    await d.applyChanges('dst', Readable.from([delta]));
    await same('a changeset of partly changed files');

    // A base whose bytes differ where the patch lands is refused, and changes nothing.
    const other = (await d.import('other', Readable.from([full]))).mountpoint;
    const ofd = fs.openSync(path.join(other, 'pg/base/16384'), 'r+');
    const st = fs.fstatSync(ofd);
    fs.writeSync(ofd, Buffer.alloc(8192, 1), 0, 8192, 7 * 8192); // same size and mtime, other bytes
    fs.futimesSync(ofd, st.atime, st.mtime);
    fs.closeSync(ofd);
    await d.snapshot('other', 's1');
    const before = await describeTree(other);
    await t.throwsAsync(d.applyChanges('other', Readable.from([delta])), { code: 'FAILED_PRECONDITION' });
    t.deepEqual(await describeTree(other), before);
    t.deepEqual((await d.snapshots('other')).map((s) => s.name), ['s1']);
  });

  it('a changeset between two snapshots, imported on a copy of the base, gives the newer tree, deletions included', async (t, { d }) => {
    const mp = (await d.create('src')).mountpoint;
    await writeFile(mp, 'a.txt', 'one\n');
    await writeFile(mp, 'keep.bin', random(2 * MiB));
    await writeFile(mp, 'sub/b', 'b');
    await writeFile(mp, 'sub/c', 'c');
    await writeFile(mp, 'gone/x', 'x');
    await writeFile(mp, 'gone/deep/y', 'y');
    await writeFile(mp, 'becomes-dir', 'f');
    await writeFile(mp, 'mode', 'm');
    await fsp.symlink('a.txt', path.join(mp, 'link'));
    await fsp.link(path.join(mp, 'sub/b'), path.join(mp, 'b-hard'));
    await fsp.chown(mp, 1001, 1002);
    await d.snapshot('src', 's1');
    const dst = await importExport(d, 'src', 's1', 'dst');
    await d.snapshot('dst', 's1');

    await writeFile(mp, 'a.txt', 'two, longer\n');
    await fsp.rm(path.join(mp, 'sub/c'));
    await fsp.rm(path.join(mp, 'gone'), { recursive: true });
    await fsp.rm(path.join(mp, 'becomes-dir'));
    await writeFile(mp, 'becomes-dir/inner', 'i');
    await fsp.chmod(path.join(mp, 'mode'), 0o600);
    await fsp.chown(path.join(mp, 'mode'), 999, 998);
    await fsp.rm(path.join(mp, 'link'));
    await fsp.symlink('sub/b', path.join(mp, 'link'));
    await writeFile(mp, 'new/file', 'n');
    await fsp.link(path.join(mp, 'keep.bin'), path.join(mp, 'new/keep-link'));
    await writeFile(mp, 'sub/b2', 'b2');
    stdoutOf('mkfifo', [path.join(mp, 'sub/pipe')]);
    await fsp.chmod(mp, 0o750);
    await d.snapshot('src', 's2');

    const delta = await collect(await d.exportChanges('src', 's2', 's1'));
    // keep.bin is in it once (a new name was linked to it), but nothing else of size is.
    t.true(delta.length < 2 * MiB + 64 * 1024, `the changeset holds only what changed (${delta.length} bytes)`);
    await d.applyChanges('dst', Readable.from([delta]));
    t.deepEqual(await describeTree(dst), await describeTree(mp), 'the copy now equals the newer snapshot');
    t.deepEqual((await d.snapshots('dst')).map((s) => s.name), ['s1', 's2'], 'and holds it as a snapshot');
    const [a, b] = [await fsp.stat(mp), await fsp.stat(dst)];
    t.deepEqual([b.mode, b.uid, b.gid], [a.mode, a.uid, a.gid], 'the root keeps its mode and owner');

    // A small change makes a small changeset, with nothing of the unchanged 2 MiB file.
    await writeFile(mp, 'a.txt', 'three\n');
    await d.snapshot('src', 's3');
    const small = await collect(await d.exportChanges('src', 's3', 's2'));
    t.true(small.length < 64 * 1024, `a one-file change is a small changeset (${small.length} bytes)`);

    // Refusals, each leaving the volume as it was.
    await t.throwsAsync(d.applyChanges('dst', Readable.from([delta])), { code: 'ALREADY_EXISTS' }, 'its snapshot is taken');
    await writeFile(dst, 'local', 'edit');
    const before = await describeTree(dst);
    await t.throwsAsync(d.applyChanges('dst', Readable.from([small])), { code: 'FAILED_PRECONDITION' }, 'the volume changed since its base');
    t.deepEqual(await describeTree(dst), before);
    await d.create('other');
    await t.throwsAsync(d.applyChanges('other', Readable.from([small])), { code: 'FAILED_PRECONDITION' }, 'no base snapshot');
    await d.snapshot('other', 's2');
    await t.throwsAsync(d.applyChanges('other', Readable.from([small])), { code: 'FAILED_PRECONDITION' }, 'a base of the same name but other files');
    await t.throwsAsync(d.applyChanges('other', Readable.from([await collect(await d.export('src', 's1'))])), { code: 'INVALID_ARGUMENT' }, 'a full export is no changeset');
    await t.throwsAsync(d.exportChanges('src', 's2', 'nope'), { code: 'NOT_FOUND' });
    await fsp.rm(path.join(dst, 'local'));
    await d.restore('dst', 's2');
    await d.applyChanges('dst', Readable.from([small]));
    t.is(await readFile(dst, 'a.txt'), 'three\n', 'after a restore to the base, the next changeset applies');
    await assertNoDebris(t, { d } as Env);
  });

  it('export and import round-trip contents, modes, owners, symlinks, hardlinks and the root', async (t, { d }) => {
    const mp = (await d.create('rich')).mountpoint;
    await writeFile(mp, 'a.txt', 'hello\n');
    await writeFile(mp, 'bin/tool', '#!/bin/sh\n');
    await fsp.chmod(path.join(mp, 'bin/tool'), 0o4755);
    await writeFile(mp, 'secret', 's');
    await fsp.chmod(path.join(mp, 'secret'), 0o600);
    await fsp.chown(path.join(mp, 'secret'), 999, 998);
    await writeFile(mp, 'zero', '');
    await fsp.chmod(path.join(mp, 'zero'), 0o000);
    await fsp.mkdir(path.join(mp, 'tmp'));
    await fsp.chmod(path.join(mp, 'tmp'), 0o1777);
    await fsp.mkdir(path.join(mp, 'empty/dir'), { recursive: true });
    await fsp.symlink('a.txt', path.join(mp, 'rel-link'));
    await fsp.symlink('/etc/passwd', path.join(mp, 'abs-link'));
    await fsp.symlink('missing', path.join(mp, 'dangling'));
    await fsp.link(path.join(mp, 'a.txt'), path.join(mp, 'bin/hard'));
    await writeFile(mp, 'big.bin', random(3 * MiB));
    await writeFile(mp, 'big-ids', 'x');
    await fsp.chown(path.join(mp, 'big-ids'), 3_000_000, 3_000_001);
    await writeFile(mp, '.wh.not-a-whiteout', 'plain file');
    stdoutOf('mkfifo', [path.join(mp, 'pipe')]);
    await fsp.chown(mp, 1001, 1002);
    await fsp.chmod(mp, 0o750);
    await fsp.utimes(path.join(mp, 'a.txt'), 1_000_000, 1_000_000);

    const tarball = await collect(await d.export('rich'));
    const copy = (await d.import('copy', Readable.from([tarball]), { labels: { from: 'rich' } })).mountpoint;
    t.deepEqual(await describeTree(copy), await describeTree(mp));
    const [a, b] = [await fsp.stat(mp), await fsp.stat(copy)];
    t.deepEqual([b.mode, b.uid, b.gid], [a.mode, a.uid, a.gid], 'the volume root keeps its mode and owner');
    t.is((await fsp.stat(path.join(copy, 'a.txt'))).ino, (await fsp.stat(path.join(copy, 'bin/hard'))).ino, 'hardlinks stay links');
    t.deepEqual((await d.inspect('copy')).labels, { from: 'rich' });
    await t.throwsAsync(d.import('copy', Readable.from([tarball])), { code: 'ALREADY_EXISTS' });
    const again = await collect(await d.export('copy'));
    t.is(sha256(again), sha256(tarball), 'the export is deterministic');
  });

  it('export of a snapshot holds the snapshot, and export fails for a missing snapshot', async (t, { d }) => {
    const mp = (await d.create('ex')).mountpoint;
    await writeFile(mp, 'f', 'old');
    await d.snapshot('ex', 's1');
    await writeFile(mp, 'f', 'new');
    const imported = await importExport(d, 'ex', 's1', 'ex-old');
    t.is(await readFile(imported, 'f'), 'old');
    const live = await importExport(d, 'ex', undefined, 'ex-new');
    t.is(await readFile(live, 'f'), 'new');
    await t.throwsAsync(d.export('ex', 'nope'), { code: 'NOT_FOUND' });
    const unread = await d.export('ex');
    unread.destroy(); // an export nobody reads must not pin anything
    const staging = path.join(path.dirname(volumesDirOf(mp)), 'staging');
    await eventually(async () => (await ls(staging)).length === 0, { message: 'the unread export to release what it held (btrfs: its private snapshot)' });
    await d.remove('ex', { force: true });
    t.deepEqual((await d.list()).map((v) => v.name).sort(), ['ex-new', 'ex-old'], 'the volume it exported can be removed');
  });

  it('import of hostile tars writes nothing outside the new volume and leaves no volume', async (t, env) => {
    const { d, outside, canary } = env;
    const other = (await d.create('bystander')).mountpoint;
    await writeFile(other, 'precious', 'keep me');
    const otherBefore = await describeTree(other);
    const outsideBefore = await treeSnapshot(outside);
    const passwd = sha256(await fsp.readFile('/etc/passwd'));
    const hostile: Record<string, Buffer> = {
      'a ../ climb': await makeTar([[{ name: '../outside/canary' }, 'pwned']]),
      'a/../../ above the root': await makeTar([{ name: 'a/', type: 'directory' }, [{ name: 'a/../../../outside/x' }, 'pwned']]),
      'writing through a symlink to an absolute outside dir': await makeTar([
        { name: 'l', type: 'symlink', linkname: outside },
        [{ name: 'l/canary' }, 'pwned'],
      ]),
      'writing through a symlink that climbs out': await makeTar([
        { name: 'd/', type: 'directory' },
        { name: 'd/up', type: 'symlink', linkname: '../../../../../../..' },
        [{ name: `d/up${canary}` }, 'pwned'],
      ]),
      'a symlink to /etc then evil/passwd': await makeTar([
        { name: 'evil', type: 'symlink', linkname: '/etc' },
        [{ name: 'evil/passwd' }, 'root::0:0::/:/bin/sh\n'],
      ]),
      'a hardlink to an absolute outside file': await makeTar([{ name: 'hl', type: 'link', linkname: canary }]),
      'a hardlink climbing out': await makeTar([{ name: 'hl', type: 'link', linkname: '../../../outside/canary' }]),
      'a hardlink through a symlink': await makeTar([
        { name: 'l', type: 'symlink', linkname: outside },
        { name: 'hl', type: 'link', linkname: 'l/canary' },
      ]),
      'not a tar at all': Buffer.from('this is not a tar file, just text that goes on and on'.repeat(20)),
      'an empty stream': Buffer.alloc(0),
    };
    for (const [what, tarball] of Object.entries(hostile)) {
      const err = await t.throwsAsync(d.import('evil', Readable.from([tarball])), { code: 'INVALID_ARGUMENT' }, what);
      t.truthy((err as { hint?: string } | undefined)?.hint, `${what}: the error says what to do`);
      await t.throwsAsync(d.inspect('evil'), { code: 'NOT_FOUND' }, `${what}: no volume is left behind`);
    }
    t.deepEqual(await treeSnapshot(outside), outsideBefore, 'nothing outside changed');
    t.is(await fsp.readFile(canary, 'utf8'), 'canary\n');
    t.is(sha256(await fsp.readFile('/etc/passwd')), passwd);
    t.deepEqual(await describeTree(other), otherBefore, 'other volumes are untouched');
    t.deepEqual((await d.list()).map((v) => v.name), ['bystander']);

    // Neutralised rather than refused: an absolute name lands inside the volume.
    const abs = await d.import('abs', Readable.from([await makeTar([[{ name: path.join(outside, 'abs') }, 'inside']])]));
    t.is(await readFile(abs.mountpoint, path.join(outside, 'abs')), 'inside');
    t.false(fs.existsSync(path.join(outside, 'abs')));
    // A symlink pointing outside is data: kept as a link, never followed.
    const link = await d.import('link', Readable.from([await makeTar([{ name: 'etc', type: 'symlink', linkname: '/etc' }])]));
    t.is(await fsp.readlink(path.join(link.mountpoint, 'etc')), '/etc');
  });

  it('whiteout names in an imported tar are kept as plain files (a volume is not a layer)', async (t, { d }) => {
    const tarball = await makeTar([
      [{ name: '.wh.gone' }, 'i am a file'],
      [{ name: 'dir/.wh..wh..opq' }, ''],
      [{ name: '.wh.dir/inside' }, 'nested'],
      { name: 'wh-device', type: 'character-device', devmajor: 0, devminor: 0 },
      [{ name: 'gone' }, 'not hidden'],
    ]);
    const mp = (await d.import('wh', Readable.from([tarball]))).mountpoint;
    t.deepEqual(await ls(mp), ['.wh.dir', '.wh.gone', 'dir', 'gone']);
    t.is(await readFile(mp, '.wh.gone'), 'i am a file');
    t.is(await readFile(mp, 'gone'), 'not hidden');
    t.true((await fsp.lstat(path.join(mp, 'dir/.wh..wh..opq'))).isFile());
    t.is(await readFile(mp, '.wh.dir/inside'), 'nested');
    t.false(fs.existsSync(path.join(mp, 'wh-device')), 'device nodes are dropped, 0:0 included');
    const back = await collect(await d.export('wh'));
    const again = (await d.import('wh2', Readable.from([back]))).mountpoint;
    t.deepEqual(await describeTree(again), await describeTree(mp), 'and they survive export and import');
  });

  it('removing a volume with snapshots is CONFLICT unless forced', async (t, { d }) => {
    const mp = (await d.create('snappy')).mountpoint;
    await writeFile(mp, 'f', 'x');
    await d.snapshot('snappy', 's1');
    await d.snapshot('snappy', 's2');
    const err = await t.throwsAsync(d.remove('snappy'), { code: 'CONFLICT' });
    t.truthy((err as { hint?: string }).hint);
    t.is(await readFile(mp, 'f'), 'x', 'nothing was removed');
    t.is((await d.snapshots('snappy')).length, 2);
    await d.remove('snappy', { force: true });
    await t.throwsAsync(d.inspect('snappy'), { code: 'NOT_FOUND' });
    t.false(fs.existsSync(path.dirname(mp)), 'the volume and its snapshots are gone');
    await d.create('snappy');
    t.deepEqual(await d.snapshots('snappy'), [], 'a new volume of that name has no old snapshots');
  });

  it('many concurrent creates and removes of one name leave a consistent store', async (t, env) => {
    const { d } = env;
    const ops = Array.from({ length: 30 }, (_, i) => (i % 3 === 2 ? d.remove('race') : d.create('race')));
    const results = await Promise.allSettled(ops);
    let created = 0;
    let removed = 0;
    results.forEach((r, i) => {
      const isRemove = i % 3 === 2;
      if (r.status === 'fulfilled') {
        if (isRemove) removed++;
        else created++;
      } else {
        t.is((r.reason as { code?: string }).code, isRemove ? 'NOT_FOUND' : 'ALREADY_EXISTS');
      }
    });
    const exists = (await d.list()).some((v) => v.name === 'race');
    t.is(created - removed, exists ? 1 : 0);
    t.true(created >= 1 && removed >= 1);
    await assertNoDebris(t, env);
    // And many names at once.
    await Promise.all(Array.from({ length: 10 }, (_, i) => d.create(`many-${i}`)));
    t.is((await d.list()).filter((v) => v.name.startsWith('many-')).length, 10);
    await Promise.all(Array.from({ length: 10 }, (_, i) => d.remove(`many-${i}`)));
    t.deepEqual((await d.list()).map((v) => v.name), exists ? ['race'] : []);
  });

  it('concurrent snapshot, restore, removeSnapshot and remove of one volume never interleave', async (t, env) => {
    const { d } = env;
    const mp = (await d.create('busy')).mountpoint;
    await writeFile(mp, 'f', 'zero');
    await d.snapshot('busy', 's0');
    await writeFile(mp, 'f', 'one');
    const ops: Array<Promise<unknown>> = [];
    for (let i = 1; i <= 4; i++) {
      ops.push(d.snapshot('busy', `s${i}`));
      ops.push(d.restore('busy', 's0'));
      if (i > 1) ops.push(d.removeSnapshot('busy', `s${i - 1}`));
      ops.push(d.clone('busy', undefined, `c${i}`));
    }
    await Promise.all(ops);
    t.deepEqual((await d.snapshots('busy')).map((s) => s.name), ['s0', 's4']);
    t.is(await readFile(mp, 'f'), 'zero');
    for (let i = 1; i <= 4; i++) t.is(await readFile(await d.mountpoint(`c${i}`), 'f'), 'zero');
    const all = [d.remove('busy', { force: true }), d.snapshot('busy', 'late').catch((e) => e.code), d.remove('busy').catch((e) => e.code)];
    const [, late, second] = await Promise.all(all);
    t.is(late, 'NOT_FOUND');
    t.is(second, 'NOT_FOUND');
    await assertNoDebris(t, env);
  });

  it('crash leftovers (new-*, rm-*, unrecorded snapshots and volumes) are cleaned on open', async (t, env) => {
    const { d, root } = env;
    const mp = (await d.create('keep')).mountpoint;
    await writeFile(mp, 'f', 'kept');
    await d.snapshot('keep', 's1');
    const volumes = volumesDirOf(mp);
    const data = path.dirname(volumes);
    const plant = async (rel: string) => writeFile(data, rel, 'debris');
    await plant(`staging/new-${lockKey('half-made')}-0a1b2c/_data/file`); // a create that crashed
    await plant('staging/new-garbage/_data/file');
    await plant('staging/rm-0a1b2c/_data/file'); // a remove that crashed
    await plant('volumes/ghost/_data/file'); // renamed into place, record never written
    await plant('volumes/keep/new-0a1b2c/file'); // a restore's copy, before its journal
    await plant('volumes/keep/rm-0a1b2c/file'); // a restore's old data
    await plant('volumes/keep/snapshots/.new-0a1b2c/file'); // a snapshot being built
    await plant('volumes/keep/snapshots/.rm-0a1b2c/file'); // a snapshot being deleted
    await plant('volumes/keep/snapshots/unrecorded/file'); // renamed in, record never written
    await writeFile(path.join(root, 'meta/keep'), '.tmp-volume.json-0a1b2c', '{"half'); // an interrupted record write
    await d.close();

    const d2 = await env.open();
    t.deepEqual((await d2.list()).map((v) => v.name), ['keep']);
    t.deepEqual((await d2.snapshots('keep')).map((s) => s.name), ['s1']);
    t.deepEqual(await ls(path.join(data, 'staging')), []);
    t.deepEqual(await ls(volumes), ['keep']);
    t.deepEqual(await ls(path.join(volumes, 'keep')), ['_data', 'snapshots']);
    t.deepEqual(await ls(path.join(volumes, 'keep/snapshots')), ['s1']);
    t.deepEqual(await ls(path.join(root, 'meta/keep')), ['volume.json']);
    t.is(await readFile(await d2.mountpoint('keep'), 'f'), 'kept');
    await d2.create('ghost'); // the name is usable
    t.deepEqual(await ls(await d2.mountpoint('ghost')), []);
  });

  it('a crash during restore leaves a whole volume, and reopening finishes the restore', async (t, env) => {
    const { d, root } = env;
    // Simulate the two crash points after the journal is written: before the renames, and between them.
    const states: Array<'before-renames' | 'between-renames'> = ['before-renames', 'between-renames'];
    for (const state of states) {
      const name = `vol-${state}`;
      const mp = (await d.create(name)).mountpoint;
      await writeFile(mp, 'f', 'snapshot');
      await d.snapshot(name, 's1');
      await writeFile(mp, 'f', 'live');
      await writeFile(mp, 'extra', 'live only');
      // The staged copy: a clone of the snapshot, moved to where restore stages it.
      const tmp = await d.clone(name, 's1', `tmp-${state}`);
      const vol = path.dirname(mp);
      await fsp.rename(tmp.mountpoint, path.join(vol, 'new-staged'));
      await fsp.rm(path.join(root, 'meta', `tmp-${state}`), { recursive: true });
      const recFile = path.join(root, 'meta', name, 'volume.json');
      const rec = JSON.parse(await fsp.readFile(recFile, 'utf8'));
      rec.restoring = { snapshot: 's1', staged: 'new-staged', aside: 'rm-aside' };
      await fsp.writeFile(recFile, JSON.stringify(rec));
      if (state === 'between-renames') await fsp.rename(mp, path.join(vol, 'rm-aside'));
    }
    await d.close();
    const d2 = await env.open();
    for (const state of states) {
      const name = `vol-${state}`;
      const mp = await d2.mountpoint(name);
      t.deepEqual(await ls(mp), ['f'], state);
      t.is(await readFile(mp, 'f'), 'snapshot', state);
      t.deepEqual(await ls(path.dirname(mp)), ['_data', 'snapshots'], `${state}: no staging left`);
      t.is(JSON.parse(await fsp.readFile(path.join(root, 'meta', name, 'volume.json'), 'utf8')).restoring, undefined);
      t.deepEqual((await d2.snapshots(name)).map((s) => s.name), ['s1']);
    }
    t.deepEqual((await d2.list()).map((v) => v.name), states.map((s) => `vol-${s}`));
  });

  it('close twice is harmless and later calls fail with FAILED_PRECONDITION', async (t, { d }) => {
    await d.create('cl');
    await Promise.all([d.close(), d.close()]);
    await d.close();
    await t.throwsAsync(d.create('cl2'), { code: 'FAILED_PRECONDITION' });
    await t.throwsAsync(d.list(), { code: 'FAILED_PRECONDITION' });
    await t.throwsAsync(d.snapshot('cl', 's1'), { code: 'FAILED_PRECONDITION' });
    await t.throwsAsync(d.mountpoint('cl'), { code: 'FAILED_PRECONDITION' });
  });

  it('close waits for running operations', async (t, env) => {
    const { d } = env;
    const mp = (await d.create('w1')).mountpoint;
    await writeFile(mp, 'f', random(2 * MiB));
    const pending = [d.snapshot('w1', 's1'), d.clone('w1', undefined, 'w2'), d.create('w3')];
    await d.close();
    const results = await Promise.allSettled(pending);
    t.true(results.every((r) => r.status === 'fulfilled'), 'operations started before close complete');
    const d2 = await env.open();
    t.deepEqual((await d2.list()).map((v) => v.name), ['w1', 'w2', 'w3']);
  });

  it('usage grows as files are written', async (t, { d }) => {
    const mp = (await d.create('grow')).mountpoint;
    const before = await d.usage('grow');
    await writeFile(mp, 'big', random(4 * MiB));
    await writeFile(mp, 'small', 'x');
    await fsp.link(path.join(mp, 'big'), path.join(mp, 'big-again'));
    stdoutOf('sync', ['-f', mp]);
    const after = await d.usage('grow');
    t.true(after.size >= before.size + 4 * MiB, `${before.size} -> ${after.size}`);
    t.true(after.size < before.size + 5 * MiB, 'a hardlinked file counts once');
    t.is(after.inodes, before.inodes + 2);
  });

  if (child) {
    it('two processes on one root never interleave operations on a volume', async (t, env) => {
      const { d, root } = env;
      const script = path.join(__dirname, 'race-child.js');
      const runChild = () =>
        new Promise<{ created: number; removed: number }>((resolve, reject) => {
          const p = spawn(process.execPath, [script, root, child.driver, String(child.poolSize ?? 0), 'xrace', '16'], {
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          p.stdout.on('data', (b) => (out += b));
          p.on('error', reject);
          p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`))));
        });
      const mine = async () => {
        let created = 0;
        let removed = 0;
        for (let i = 0; i < 16; i++) {
          try {
            if (i % 2 === 0) {
              await d.create('xrace');
              created++;
            } else {
              await d.remove('xrace');
              removed++;
            }
          } catch (e) {
            t.true(['ALREADY_EXISTS', 'NOT_FOUND'].includes((e as { code: string }).code), String(e));
          }
        }
        return { created, removed };
      };
      const [a, b] = await Promise.all([runChild(), runChild(), mine()]).then(([c1, c2, m]) => [
        { created: c1.created + c2.created, removed: c1.removed + c2.removed },
        m,
      ]);
      const exists = (await d.list()).some((v) => v.name === 'xrace');
      t.is(a.created + b.created - a.removed - b.removed, exists ? 1 : 0);
      await assertNoDebris(t, env);
    });
  }
}

/** Export `name` (or its snapshot), import it as `as`, and return the new volume's mountpoint. */
/** user.* xattrs of every entry under `root`, from one getfattr walk. */
function xattrsOf(root: string): string {
  return stdoutOf('getfattr', ['-R', '-P', '-h', '-d', '-e', 'hex', '-m', '^user\\.', '.'], { cwd: root });
}

async function importExport(d: VolumeDriver, name: string, snap: string | undefined, as: string): Promise<string> {
  const tarball = await collect(await d.export(name, snap));
  return (await d.import(as, Readable.from([tarball]))).mountpoint;
}

/** No staging debris, every volume directory has a record, and every record's snapshots exist. */
async function assertNoDebris(t: ExecutionContext, env: Env): Promise<void> {
  const probe = await env.d.create('probe-debris');
  const volumes = volumesDirOf(probe.mountpoint);
  await env.d.remove('probe-debris');
  t.deepEqual(await ls(path.join(path.dirname(volumes), 'staging')), [], 'no staging debris');
  const names = (await env.d.list()).map((v) => v.name);
  t.deepEqual(await ls(volumes), names, 'every volume directory is a listed volume');
  for (const n of names) {
    t.deepEqual(await ls(path.join(volumes, n)), ['_data', 'snapshots']);
    t.deepEqual(await ls(path.join(volumes, n, 'snapshots')), (await env.d.snapshots(n)).map((s) => s.name).sort());
  }
}
