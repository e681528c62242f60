import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ExecutionContext, TestFn } from 'ava';
import { mountAll, unmountAll } from '../../volumes/layers/mount';
import type { Mount, SnapshotInfo, Snapshotter } from '../../volumes/layers/snapshotter';
import { mountsUnder } from '../helpers/mounts';
import { eventually } from '../helpers/eventually';

/**
 * The layer store conformance suite, after containerd's `SnapshotterSuite(t, name, factory)`:
 * every Snapshotter (and every wrapper around one) must pass it unchanged.
 *
 * Each case gets a fresh temp dir with `root/` (given to `factory`) and `work/` (mount
 * points). Everything is real: the plans are mounted with mountAll, so overlay whiteouts,
 * copy-up and read-only views come from the kernel. One teardown per case unmounts whatever
 * is still mounted under its temp dir before deleting it, so a failing case leaves no mounts.
 *
 * One case ("reopen after a crash") plants debris by hand and so assumes the crash-safety
 * layout from DESIGN.md: snapshot directories live in `root/snapshots/`, built as `new-*`
 * and deleted as `rm-*`.
 */
export function snapshotterSuite(test: TestFn, name: string, factory: (root: string) => Promise<Snapshotter>): void {
  const it = (title: string, fn: (t: ExecutionContext, env: Env) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => fn(t, await setup(t, factory)));
  };

  it('prepare, write, commit, and a snapshot on top sees the files', async (t, env) => {
    await env.layer('base', '', async (dir) => {
      await writeFile(dir, 'foo', 'foo\n');
      await fs.promises.mkdir(path.join(dir, 'a/b/c'), { recursive: true });
    });
    await t.throwsAsync(env.sn.stat('base-key'), { code: 'NOT_FOUND' }, 'the key is gone after commit');
    await env.layer('next', 'base', async (dir) => {
      t.is(await readFile(dir, 'foo'), 'foo\n');
      t.true(fs.existsSync(path.join(dir, 'a/b/c')));
      await writeFile(dir, 'foo', 'bar\n');
      await writeFile(dir, 'bar', 'bar\n');
      await fs.promises.rm(path.join(dir, 'a/b'), { recursive: true });
    });
    const dir = await env.mount(await env.sn.view('look', 'next'), 'look');
    t.deepEqual((await fs.promises.readdir(dir)).sort(), ['a', 'bar', 'foo']);
    t.is(await readFile(dir, 'foo'), 'bar\n');
    t.deepEqual(await fs.promises.readdir(path.join(dir, 'a')), []);
    await env.unmount(dir);
    await env.sn.remove('look');
    await env.sn.remove('next');
    await env.sn.remove('base');
    t.deepEqual(await names(env.sn), []);
  });

  it('a layer prepared on nothing commits on a parent given at commit, taking its root mode unless it set its own', async (t, env) => {
    await env.layer('base', '', async (dir) => {
      await writeFile(dir, 'foo', 'foo\n');
      await fs.promises.chmod(dir, 0o710);
    });
    // Two layers unpacked apart (as a pull does, in parallel), before they know their parent.
    await env.sn.prepare('apart-1', '');
    await writeFile(await env.sn.upperDir('apart-1'), 'bar', 'bar\n');
    await env.sn.prepare('apart-2', '');
    await fs.promises.chmod(await env.sn.upperDir('apart-2'), 0o750);
    await t.throwsAsync(env.sn.commit('two', 'apart-2', { parent: 'one' }), { code: 'NOT_FOUND' }, 'the parent must be there');
    await env.sn.commit('one', 'apart-1', { parent: 'base' });
    await env.sn.commit('two', 'apart-2', { parent: 'one', ownRoot: true });
    t.like(await env.sn.stat('one'), { parent: 'base', kind: 'committed' });
    t.like(await env.sn.stat('two'), { parent: 'one', kind: 'committed' });
    const dir = await env.mount(await env.sn.view('look', 'two'), 'look');
    t.deepEqual((await fs.promises.readdir(dir)).sort(), ['bar', 'foo']);
    t.is((await fs.promises.stat(dir)).mode & 0o7777, 0o750, 'the top layer set / itself');
    await env.unmount(dir);
    await env.sn.remove('look');
    const one = await env.mount(await env.sn.view('look-one', 'one'), 'look-one');
    t.is((await fs.promises.stat(one)).mode & 0o7777, 0o710, 'a layer that did not set / has its parent\'s');
    await env.unmount(one);
    // Only a snapshot prepared on nothing can be given a parent.
    await env.sn.prepare('on-base', 'base');
    await t.throwsAsync(env.sn.commit('other', 'on-base', { parent: 'one' }), { code: 'FAILED_PRECONDITION' });
  });

  it('stat of an active snapshot reports kind active, its parent and labels', async (t, env) => {
    await env.layer('base', '', async () => undefined);
    await env.sn.prepare('ctr-1', 'base', { labels: { app: 'web' } });
    const st = await env.sn.stat('ctr-1');
    t.like(st, { name: 'ctr-1', parent: 'base', kind: 'active', labels: { app: 'web' } });
    t.false(Number.isNaN(Date.parse(st.created)));
    t.false(Number.isNaN(Date.parse(st.updated)));
    await t.throwsAsync(env.sn.stat('nope'), { code: 'NOT_FOUND' });
  });

  it('stat of a committed snapshot reports kind committed and no parent', async (t, env) => {
    await env.layer('sha256:abc', '', async (dir) => writeFile(dir, 'foo', 'foo'));
    t.like(await env.sn.stat('sha256:abc'), { name: 'sha256:abc', parent: '', kind: 'committed' });
  });

  it('commit keeps the labels unless new ones are given', async (t, env) => {
    await env.sn.prepare('a', '', { labels: { x: '1' } });
    await env.sn.commit('ca', 'a');
    t.deepEqual((await env.sn.stat('ca')).labels, { x: '1' });
    await env.sn.prepare('b', '', { labels: { x: '1' } });
    await env.sn.commit('cb', 'b', { labels: { y: '2' } });
    t.deepEqual((await env.sn.stat('cb')).labels, { y: '2' });
  });

  it('update replaces the labels and keeps kind and parent', async (t, env) => {
    await env.layer('base', '', async () => undefined);
    await env.sn.prepare('ctr', 'base', { labels: { a: '1', b: '2' } });
    const before = await env.sn.stat('ctr');
    // The clock has moved past the first stamp, so a later update is stamped later.
    await eventually(() => Date.now() > Date.parse(before.updated), { interval: 1, message: 'the clock to pass the first stamp' });
    const after = await env.sn.update('ctr', { c: '3' });
    t.deepEqual(after.labels, { c: '3' });
    t.like(after, { kind: 'active', parent: 'base', created: before.created });
    t.true(Date.parse(after.updated) > Date.parse(before.updated));
    t.deepEqual(await env.sn.stat('ctr'), after);
    t.deepEqual((await env.sn.update('base', { gc: 'root' })).labels, { gc: 'root' });
    await t.throwsAsync(env.sn.update('nope', {}), { code: 'NOT_FOUND' });
  });

  it('files are transitive across layers and the nearest layer wins', async (t, env) => {
    await env.layer('A', '', async (dir) => writeFile(dir, 'foo', 'foo\n'));
    await env.layer('B', 'A', async (dir) => {
      t.is(await readFile(dir, 'foo'), 'foo\n');
      await writeFile(dir, 'foo', 'foo bar\n');
      await writeFile(dir, 'b', 'b');
    });
    await env.layer('C', 'B', async (dir) => writeFile(dir, 'c', 'c'));
    t.is((await env.sn.stat('C')).parent, 'B');
    t.is((await env.sn.stat('B')).parent, 'A');
    t.is((await env.sn.stat('A')).parent, '');
    const dir = await env.mount(await env.sn.prepare('top', 'C'), 'top');
    t.deepEqual((await fs.promises.readdir(dir)).sort(), ['b', 'c', 'foo']);
    t.is(await readFile(dir, 'foo'), 'foo bar\n');
  });

  it('a key already in use cannot be prepared or viewed again (ALREADY_EXISTS)', async (t, env) => {
    await env.layer('snapA', '', async () => undefined);
    await env.sn.prepare('new', 'snapA');
    await t.throwsAsync(env.sn.view('new', 'snapA'), { code: 'ALREADY_EXISTS' });
    await t.throwsAsync(env.sn.prepare('new', 'snapA'), { code: 'ALREADY_EXISTS' });
    await env.sn.view('v', 'snapA');
    await t.throwsAsync(env.sn.view('v', 'snapA'), { code: 'ALREADY_EXISTS' });
    await t.throwsAsync(env.sn.prepare('snapA', ''), { code: 'ALREADY_EXISTS' }, 'keys and names share one namespace');
    t.deepEqual(await names(env.sn), ['new', 'snapA', 'v']);
  });

  it('commit to a name already in use fails and keeps the active snapshot', async (t, env) => {
    await env.layer('taken', '', async () => undefined);
    await env.sn.prepare('work', '');
    await t.throwsAsync(env.sn.commit('taken', 'work'), { code: 'ALREADY_EXISTS' });
    t.is((await env.sn.stat('work')).kind, 'active');
    await t.throwsAsync(env.sn.commit('x', 'missing'), { code: 'NOT_FOUND' });
  });

  it('remove deletes an active snapshot, its key and its files', async (t, env) => {
    const dir = await env.mount(await env.sn.prepare('gone', ''), 'gone');
    await writeFile(dir, 'f', 'data');
    await env.unmount(dir);
    const upper = await env.sn.upperDir('gone');
    t.true(fs.existsSync(path.join(upper, 'f')));
    await env.sn.remove('gone');
    t.false(fs.existsSync(upper));
    await t.throwsAsync(env.sn.stat('gone'), { code: 'NOT_FOUND' });
    await t.throwsAsync(env.sn.remove('gone'), { code: 'NOT_FOUND' });
    await env.sn.prepare('gone', '');
    t.is((await env.sn.stat('gone')).kind, 'active', 'the key can be used again');
  });

  it('removing a committed snapshot that has children fails with CONFLICT', async (t, env) => {
    await env.layer('base', '', async () => undefined);
    await env.layer('inter', 'base', async () => undefined);
    await env.sn.prepare('top', 'inter');
    await t.throwsAsync(env.sn.remove('base'), { code: 'CONFLICT' });
    await t.throwsAsync(env.sn.remove('inter'), { code: 'CONFLICT' });
    await env.sn.remove('top');
    await env.sn.remove('inter');
    await env.sn.remove('base');
    t.deepEqual(await names(env.sn), []);
  });

  it('files and directories deleted in a child stay deleted above it (whiteouts)', async (t, env) => {
    await env.layer('l1', '', async (dir) => {
      await writeFile(dir, 'foo', 'foo\n');
      await writeFile(dir, 'foobar', 'foobar\n');
      await writeFile(dir, 'dir/sub/x', 'x');
      await writeFile(dir, 'keep/file', 'f');
      await writeFile(dir, 'opaque/old', 'old');
    });
    await env.layer('l2', 'l1', async (dir) => {
      await fs.promises.rm(path.join(dir, 'foobar'));
      await fs.promises.rm(path.join(dir, 'dir'), { recursive: true });
      await fs.promises.rm(path.join(dir, 'keep/file'));
      // Removed and made again: overlay marks the new directory opaque.
      await fs.promises.rm(path.join(dir, 'opaque'), { recursive: true });
      await writeFile(dir, 'opaque/new', 'new');
    });
    // The kernel recorded the deletion in l2's own layer as a whiteout (char device 0/0).
    const wh = await fs.promises.lstat(path.join(await env.sn.upperDir('l2'), 'foobar'));
    t.true(wh.isCharacterDevice() && wh.rdev === 0);

    await env.layer('l3', 'l2', async () => undefined);
    const dir = await env.mount(await env.sn.view('v', 'l3'), 'v');
    t.deepEqual((await fs.promises.readdir(dir)).sort(), ['foo', 'keep', 'opaque']);
    t.deepEqual(await fs.promises.readdir(path.join(dir, 'keep')), []);
    t.deepEqual(await fs.promises.readdir(path.join(dir, 'opaque')), ['new']);
  });

  it('a file moved out of a lower layer leaves its old place', async (t, env) => {
    await env.layer('l1', '', async (dir) => {
      await writeFile(dir, 'somefiles/f1', 'was here first!');
      await writeFile(dir, 'somefiles/f2', 'nothing interesting');
      await fs.promises.mkdir(path.join(dir, 'elsewhere'));
    });
    await env.layer('l2', 'l1', async (dir) => {
      await fs.promises.rename(path.join(dir, 'somefiles/f1'), path.join(dir, 'elsewhere/f1'));
      await fs.promises.rename(path.join(dir, 'somefiles/f2'), path.join(dir, 'somefiles/f3'));
    });
    const dir = await env.mount(await env.sn.prepare('top', 'l2'), 'top');
    t.deepEqual(await fs.promises.readdir(path.join(dir, 'somefiles')), ['f3']);
    t.is(await readFile(dir, 'somefiles/f3'), 'nothing interesting');
    t.is(await readFile(dir, 'elsewhere/f1'), 'was here first!');
  });

  it('a view is read-only: writes fail with EROFS, with zero, one or two parents', async (t, env) => {
    await env.layer('one', '', async (dir) => writeFile(dir, 'a', 'a'));
    await env.layer('two', 'one', async (dir) => writeFile(dir, 'b', 'b'));
    for (const [key, parent, files] of [['v0', '', []], ['v1', 'one', ['a']], ['v2', 'two', ['a', 'b']]] as const) {
      const dir = await env.mount(await env.sn.view(key, parent), key);
      t.deepEqual((await fs.promises.readdir(dir)).sort(), [...files], key);
      await t.throwsAsync(fs.promises.writeFile(path.join(dir, 'new'), 'x'), { code: 'EROFS' }, key);
      await env.unmount(dir);
      t.is((await env.sn.stat(key)).kind, 'view');
    }
  });

  it('views share their parent, and only a committed snapshot can be a parent', async (t, env) => {
    await env.layer('p', '', async (dir) => writeFile(dir, 'f', 'p'));
    const d1 = await env.mount(await env.sn.view('v1', 'p'), 'v1');
    const d2 = await env.mount(await env.sn.view('v2', 'p'), 'v2');
    t.is(await readFile(d1, 'f'), 'p');
    t.is(await readFile(d2, 'f'), 'p');
    await env.sn.prepare('act', 'p');
    await t.throwsAsync(env.sn.view('vv', 'v1'), { code: 'INVALID_ARGUMENT' }, 'a view is no parent');
    await t.throwsAsync(env.sn.prepare('pa', 'act'), { code: 'INVALID_ARGUMENT' }, 'an active snapshot is no parent');
    await t.throwsAsync(env.sn.view('vm', 'missing'), { code: 'NOT_FOUND' });
    await t.throwsAsync(env.sn.remove('p'), { code: 'CONFLICT' }, 'views are children too');
  });

  it('a view cannot be committed', async (t, env) => {
    await env.layer('p', '', async () => undefined);
    await env.sn.view('v', 'p');
    await t.throwsAsync(env.sn.commit('c', 'v'), { code: 'FAILED_PRECONDITION' });
    await t.throwsAsync(env.sn.commit('c2', 'p'), { code: 'FAILED_PRECONDITION' }, 'nor a committed one again');
    t.is((await env.sn.stat('v')).kind, 'view');
  });

  it('mounts returns the plan again for active snapshots and views, not for committed ones', async (t, env) => {
    await env.layer('p', '', async () => undefined);
    const prepared = await env.sn.prepare('a', 'p');
    t.deepEqual(await env.sn.mounts('a'), prepared);
    const viewed = await env.sn.view('v', 'p');
    t.deepEqual(await env.sn.mounts('v'), viewed);
    await t.throwsAsync(env.sn.mounts('p'), { code: 'FAILED_PRECONDITION' });
    await t.throwsAsync(env.sn.mounts('nope'), { code: 'NOT_FOUND' });
  });

  it('owners and modes of files and directories survive commit', async (t, env) => {
    await env.layer('l1', '', async (dir) => {
      await writeFile(dir, 'd/f', 'f');
      await fs.promises.chmod(path.join(dir, 'd/f'), 0o640);
      await fs.promises.chown(path.join(dir, 'd/f'), 1234, 5678);
      await fs.promises.chmod(path.join(dir, 'd'), 0o750);
      await fs.promises.chown(path.join(dir, 'd'), 1000, 1001);
      await fs.promises.mkdir(path.join(dir, 'tmp'));
      await fs.promises.chmod(path.join(dir, 'tmp'), 0o1777);
      await writeFile(dir, 'lower/g', 'g');
    });
    await env.layer('l2', 'l1', async (dir) => {
      // Changing metadata of lower files and directories copies them up into l2.
      await fs.promises.chown(path.join(dir, 'lower/g'), 42, 43);
      await fs.promises.chmod(path.join(dir, 'lower'), 0o711);
      await fs.promises.chown(path.join(dir, 'lower'), 7, 8);
      await fs.promises.mkdir(path.join(dir, 'new'));
      await fs.promises.chmod(path.join(dir, 'new'), 0o2700);
      await fs.promises.chown(path.join(dir, 'new'), 9, 10);
    });
    const dir = await env.mount(await env.sn.prepare('top', 'l2'), 'top');
    const expect = async (p: string, mode: number, uid: number, gid: number) => {
      const st = await fs.promises.lstat(path.join(dir, p));
      t.deepEqual([(st.mode & 0o7777).toString(8), st.uid, st.gid], [mode.toString(8), uid, gid], p);
    };
    await expect('d', 0o750, 1000, 1001);
    await expect('d/f', 0o640, 1234, 5678);
    await expect('tmp', 0o1777, 0, 0);
    await expect('lower', 0o711, 7, 8);
    await expect('lower/g', 0o644, 42, 43);
    await expect('new', 0o2700, 9, 10);
  });

  it("a new snapshot's root is 0755, or its parent's root mode and owner", async (t, env) => {
    const mode = async (d: string) => {
      const st = await fs.promises.stat(d);
      return [(st.mode & 0o7777).toString(8), st.uid, st.gid];
    };
    await env.layer('l1', '', async (dir) => {
      t.deepEqual(await mode(dir), ['755', 0, 0]);
      await fs.promises.chmod(dir, 0o700);
      await fs.promises.chown(dir, 100, 101);
    });
    await env.layer('l2', 'l1', async (dir) => {
      t.deepEqual(await mode(dir), ['700', 100, 101]);
    });
    const dir = await env.mount(await env.sn.view('v', 'l2'), 'v');
    t.deepEqual(await mode(dir), ['700', 100, 101]);
  });

  it('walk lists every snapshot, each as stat reports it', async (t, env) => {
    await env.layer('c1', '', async () => undefined);
    await env.sn.prepare('a1', 'c1', { labels: { l: 'v' } });
    await env.sn.view('v1', 'c1');
    const walked: SnapshotInfo[] = [];
    await env.sn.walk((i) => void walked.push(i));
    t.deepEqual(walked.map((i) => i.name).sort(), ['a1', 'c1', 'v1']);
    for (const i of walked) t.deepEqual(i, await env.sn.stat(i.name));
  });

  it("usage counts the snapshot's own data and grows as data is written", async (t, env) => {
    const dir = await env.mount(await env.sn.prepare('u', ''), 'u');
    const empty = await env.sn.usage('u');
    t.true(empty.inodes >= 1);
    await writeFile(dir, 'data/blob', randomBytes(1 << 20));
    const full = await env.sn.usage('u');
    t.true(full.size >= empty.size + (1 << 20), `${full.size} < ${empty.size} + 1 MiB`);
    t.is(full.inodes, empty.inodes + 2);
    await env.unmount(dir);
    await env.sn.commit('c', 'u');
    t.deepEqual(await env.sn.usage('c'), full);
    await env.sn.prepare('child', 'c');
    t.true((await env.sn.usage('child')).size < 1 << 20, "a child's usage excludes its parents");
    await t.throwsAsync(env.sn.usage('nope'), { code: 'NOT_FOUND' });
  });

  it('128 layers mount, and every layer’s file is visible', async (t, env) => {
    let parent = '';
    for (let i = 0; i < 128; i++) {
      // Written straight into the upper dir, as an image pull applies a layer tar.
      await env.sn.prepare(`extract-${i}`, parent);
      await fs.promises.writeFile(path.join(await env.sn.upperDir(`extract-${i}`), `file-${i}`), String(i));
      await env.sn.commit(`sha256:layer-${i}`, `extract-${i}`);
      parent = `sha256:layer-${i}`;
    }
    const want = Array.from({ length: 128 }, (_, i) => `file-${i}`).sort();
    const rw = await env.mount(await env.sn.prepare('ctr', parent), 'ctr');
    t.deepEqual((await fs.promises.readdir(rw)).sort(), want);
    t.is(await readFile(rw, 'file-0'), '0');
    await writeFile(rw, 'file-0', 'changed');
    const ro = await env.mount(await env.sn.view('view', parent), 'view');
    t.deepEqual((await fs.promises.readdir(ro)).sort(), want);
    t.is(await readFile(ro, 'file-0'), '0');
  });

  it('close twice is harmless', async (t, env) => {
    await env.sn.close();
    await t.notThrowsAsync(env.sn.close());
  });

  it('every operation after close fails with FAILED_PRECONDITION', async (t, env) => {
    await env.layer('c', '', async () => undefined);
    await env.sn.prepare('a', 'c');
    await env.sn.close();
    const sn = env.sn;
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['stat', () => sn.stat('a')],
      ['update', () => sn.update('a', {})],
      ['usage', () => sn.usage('a')],
      ['mounts', () => sn.mounts('a')],
      ['prepare', () => sn.prepare('b', 'c')],
      ['view', () => sn.view('b', 'c')],
      ['commit', () => sn.commit('d', 'a')],
      ['remove', () => sn.remove('a')],
      ['walk', () => sn.walk(() => undefined)],
      ['upperDir', () => sn.upperDir('a')],
    ];
    for (const [op, call] of calls) await t.throwsAsync(call(), { code: 'FAILED_PRECONDITION' }, op);
    const again = await env.reopen();
    t.deepEqual(await names(again), ['a', 'c'], 'nothing changed on disk');
  });

  it('reopen after a crash deletes leftover new-*, rm-* and orphan directories', async (t, env) => {
    await env.layer('base', '', async (dir) => writeFile(dir, 'f', 'base'));
    await env.sn.prepare('ctr', 'base');
    await env.sn.close();
    // What a crash can leave: a half-built snapshot, a half-deleted one, a directory whose
    // metadata never got written, and a temp metadata file.
    const snaps = path.join(env.root, 'snapshots');
    const debris = ['new-9001', 'rm-9002', '9003'];
    for (const d of debris) await writeFile(snaps, `${d}/fs/file`, 'debris');
    await writeFile(env.root, '.tmp-metadata.json-deadbeef', '{"half":');
    const kept = await fs.promises.readdir(snaps);

    const sn = await env.reopen();
    t.deepEqual((await fs.promises.readdir(snaps)).sort(), kept.filter((d) => !debris.includes(d)).sort());
    t.false(fs.existsSync(path.join(env.root, '.tmp-metadata.json-deadbeef')));
    t.deepEqual(await names(sn), ['base', 'ctr']);
    const dir = await env.mount(await sn.mounts('ctr'), 'ctr');
    t.is(await readFile(dir, 'f'), 'base');
    await sn.prepare('after', 'base');
    t.deepEqual(await names(sn), ['after', 'base', 'ctr']);
  });

  it('keys and names are validated (INVALID_ARGUMENT); digests and ids are fine', async (t, env) => {
    for (const bad of ['', 'a/b', 'nul\0byte', 'x'.repeat(513)]) {
      await t.throwsAsync(env.sn.prepare(bad, ''), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad.slice(0, 20)));
    }
    await env.sn.prepare('extract-1', '');
    await t.throwsAsync(env.sn.commit('../escape', 'extract-1'), { code: 'INVALID_ARGUMENT' });
    await env.sn.commit(`sha256:${'ab'.repeat(32)}`, 'extract-1');
    await env.sn.prepare(`ctr-${'0f'.repeat(32)}`, `sha256:${'ab'.repeat(32)}`);
    await env.sn.prepare('x'.repeat(512), '');
    t.is((await names(env.sn)).length, 3);
  });

  it('prepare on a missing parent fails with NOT_FOUND and leaves nothing behind', async (t, env) => {
    const before = await fs.promises.readdir(path.join(env.root, 'snapshots'));
    await t.throwsAsync(env.sn.prepare('k', 'missing'), { code: 'NOT_FOUND' });
    t.deepEqual(await fs.promises.readdir(path.join(env.root, 'snapshots')), before);
    t.deepEqual(await names(env.sn), []);
  });
}

interface Env {
  /** The snapshotter's root dir (`<tmp>/root`). */
  root: string;
  /** The current snapshotter: `reopen` replaces it. */
  sn: Snapshotter;
  /** Mount a plan at `<tmp>/work/<name>` and return that directory. */
  mount(mounts: Mount[], name: string): Promise<string>;
  unmount(dir: string): Promise<void>;
  /** Close the snapshotter and open a new one on the same root, as after a restart. */
  reopen(): Promise<Snapshotter>;
  /** prepare `name-key` on `parent`, let `fill` write through a real mount, unmount, commit as `name`. */
  layer(name: string, parent: string, fill: (dir: string) => Promise<void>): Promise<void>;
}

async function setup(t: ExecutionContext, factory: (root: string) => Promise<Snapshotter>): Promise<Env> {
  const base = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-layers-'));
  const root = path.join(base, 'root');
  const work = path.join(base, 'work');
  await fs.promises.mkdir(root);
  await fs.promises.mkdir(work);
  t.teardown(async () => {
    await env.sn.close().catch(() => undefined);
    // Deepest first, so stacked and nested mounts come off in order.
    for (const m of mountsUnder(base)) await unmountAll(m);
    const left = mountsUnder(base);
    // Never rm -rf through a mount: it would delete whatever the mount shows.
    if (left.length > 0) throw new Error(`still mounted after the test, not deleting ${base}: ${left.join(', ')}`);
    await fs.promises.rm(base, { recursive: true, force: true });
  });
  const env: Env = {
    root,
    sn: await factory(root),
    async mount(mounts, name) {
      const dir = path.join(work, name);
      await fs.promises.mkdir(dir, { recursive: true });
      await mountAll(mounts, dir);
      return dir;
    },
    unmount: unmountAll,
    async reopen() {
      await env.sn.close();
      env.sn = await factory(root);
      return env.sn;
    },
    async layer(name, parent, fill) {
      const key = `${name}-key`;
      const dir = await env.mount(await env.sn.prepare(key, parent), key.replace(/[^\w.-]/g, '_'));
      try {
        await fill(dir);
      } finally {
        await env.unmount(dir);
      }
      await env.sn.commit(name, key);
    },
  };
  return env;
}

async function names(sn: Snapshotter): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => void out.push(i.name));
  return out.sort();
}

/** Write a file, making its directories; the file mode is set so the umask does not decide it. */
async function writeFile(dir: string, rel: string, data: string | Buffer): Promise<void> {
  const p = path.join(dir, rel);
  await fs.promises.mkdir(path.dirname(p), { recursive: true });
  await fs.promises.writeFile(p, data);
  await fs.promises.chmod(p, 0o644);
}

function readFile(dir: string, rel: string): Promise<string> {
  return fs.promises.readFile(path.join(dir, rel), 'utf8');
}
