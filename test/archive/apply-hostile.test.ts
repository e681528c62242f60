/**
 * applyLayer against hostile tarballs: every escape attempt rejects with INVALID_ARGUMENT
 * and leaves everything outside `layer/` exactly as it was; neutralised cases (absolute
 * names, device nodes) succeed but stay inside.
 */
import test from 'ava';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { apply, assertRejected, fixture, snapshot } from './helpers';
import { makeTar } from '../helpers/tar';

test('an absolute name is made relative and lands inside the layer', async (t) => {
  const fx = await fixture(t);
  const before = await snapshot(fx.tmp, fx.layer);
  await apply(await makeTar([[{ name: path.join(fx.outside, 'abs') }, 'x']]), fx.layer);
  t.is(await fsp.readFile(path.join(fx.layer, fx.outside, 'abs'), 'utf8'), 'x');
  t.deepEqual(await snapshot(fx.tmp, fx.layer), before);
});

test('a ../ climb is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([[{ name: '../outside/canary' }, 'pwned']]));
});

test('a/../../x climbing above the root is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([{ name: 'a/', type: 'directory' }, [{ name: 'a/../../outside/x' }, 'pwned']]));
});

test('writing through a symlink to an absolute outside dir is rejected', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'l', type: 'symlink', linkname: fx.outside },
    [{ name: 'l/canary' }, 'pwned'],
  ]);
  await assertRejected(t, fx, tarball);
});

test('writing through a symlink that climbs out (../../outside) is rejected', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'd/', type: 'directory' },
    { name: 'd/l', type: 'symlink', linkname: '../../outside' },
    [{ name: 'd/l/new' }, 'pwned'],
  ]);
  await assertRejected(t, fx, tarball);
});

test('evil -> /etc then evil/passwd is rejected and /etc/passwd is untouched', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([{ name: 'evil', type: 'symlink', linkname: '/etc' }, [{ name: 'evil/passwd' }, 'root::0:0::/:/bin/sh\n']]);
  await assertRejected(t, fx, tarball);
});

test('a symlink to a directory inside, then .. through it, is rejected', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'a/b/', type: 'directory' },
    { name: 'l', type: 'symlink', linkname: 'a/b' },
    [{ name: 'l/../../../outside/canary' }, 'pwned'],
  ]);
  await assertRejected(t, fx, tarball);
});

test('a symlink to a directory inside is not followed either', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'a/b/', type: 'directory' },
    { name: 'a/b/up', type: 'symlink', linkname: '../../..' },
    [{ name: 'a/b/up/outside/canary' }, 'pwned'],
  ]);
  await assertRejected(t, fx, tarball);
});

test('a hardlink to an absolute outside path is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([{ name: 'hl', type: 'link', linkname: fx.canary }]));
});

test('a hardlink to ../outside/canary is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([{ name: 'hl', type: 'link', linkname: '../outside/canary' }]));
});

test('a hardlink through a symlink is rejected', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'l', type: 'symlink', linkname: fx.outside },
    { name: 'hl', type: 'link', linkname: 'l/canary' },
  ]);
  await assertRejected(t, fx, tarball);
});

test('a hardlink to a directory is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([{ name: 'd/', type: 'directory' }, { name: 'hl', type: 'link', linkname: 'd' }]));
});

test('a hardlink to a file not in the layer is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([{ name: 'hl', type: 'link', linkname: 'nope' }]));
});

for (const name of ['.wh..', '.wh...', 'etc/.wh..', '.wh.', '.wh..wh.plnk', '.wh.x/y']) {
  test(`bad whiteout ${JSON.stringify(name)} is rejected`, async (t) => {
    const fx = await fixture(t);
    await assertRejected(t, fx, await makeTar([{ name: 'etc/', type: 'directory' }, { name }]));
  });
}

test('a NUL in a name is rejected', async (t) => {
  const fx = await fixture(t);
  // pax carries the full name; a ustar field would just end at the NUL.
  await assertRejected(t, fx, await makeTar([[{ name: 'a\0/../../outside/x', pax: {} }, 'pwned']]));
});

test('a NUL in a symlink target is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([{ name: 'l', type: 'symlink', linkname: 'x\0y', pax: {} }]));
});

test('a name over 4096 bytes is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([[{ name: 'a/'.repeat(2100) + 'f' }, 'x']]));
});

test('device nodes are dropped and counted', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
  ]);
  const r = await apply(tarball, fx.layer);
  t.is(r.devicesDropped, 2);
  t.deepEqual(await fsp.readdir(path.join(fx.layer, 'dev')), []);
});

test('device nodes are created with allowDevices', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }]);
  const r = await apply(tarball, fx.layer, { allowDevices: true });
  t.is(r.devicesDropped, 0);
  const st = await fsp.lstat(path.join(fx.layer, 'null'));
  t.true(st.isCharacterDevice());
  t.is(st.rdev, (1 << 8) | 3);
  t.is(st.mode & 0o7777, 0o666);
});

test('a file replacing a symlink to outside writes the layer, not the target', async (t) => {
  const fx = await fixture(t);
  const before = await snapshot(fx.tmp, fx.layer);
  await apply(await makeTar([{ name: 'l', type: 'symlink', linkname: fx.canary }, [{ name: 'l' }, 'mine']]), fx.layer);
  t.is(await fsp.readFile(path.join(fx.layer, 'l'), 'utf8'), 'mine');
  t.false((await fsp.lstat(path.join(fx.layer, 'l'))).isSymbolicLink());
  t.deepEqual(await snapshot(fx.tmp, fx.layer), before);
});

test('a directory entry over a symlink replaces the symlink', async (t) => {
  const fx = await fixture(t);
  const before = await snapshot(fx.tmp, fx.layer);
  await apply(await makeTar([{ name: 'l', type: 'symlink', linkname: fx.outside }, { name: 'l/', type: 'directory', mode: 0o700 }]), fx.layer);
  t.true((await fsp.lstat(path.join(fx.layer, 'l'))).isDirectory());
  t.deepEqual(await snapshot(fx.tmp, fx.layer), before);
});

test('a file used as a directory is rejected', async (t) => {
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([[{ name: 'f' }, 'x'], [{ name: 'f/g' }, 'y']]));
});
