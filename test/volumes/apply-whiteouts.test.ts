/**
 * applyLayer's `whiteouts` option: 'overlay' (the default, unchanged for image layers)
 * converts OCI whiteouts, 'plain' (volume import) keeps `.wh.` names as ordinary files,
 * 'reject' refuses any. Every mode keeps all the other safety checks.
 */
import test from 'ava';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { apply, assertRejected, fixture } from '../archive/helpers';
import { makeTar } from '../helpers/tar';

const layer = () =>
  makeTar([
    { name: 'dir/', type: 'directory' },
    [{ name: 'dir/.wh..wh..opq' }, ''],
    [{ name: '.wh.gone' }, 'content'],
    [{ name: 'kept' }, 'kept'],
  ]);

test('whiteouts: by default (overlay) OCI whiteouts become overlay whiteouts, as before', async (t) => {
  const fx = await fixture(t);
  await apply(await layer(), fx.layer);
  const st = await fsp.lstat(path.join(fx.layer, 'gone'));
  t.true(st.isCharacterDevice() && st.rdev === 0, '.wh.gone became a 0:0 char device named gone');
  await t.throwsAsync(fsp.lstat(path.join(fx.layer, '.wh.gone')));
  await t.throwsAsync(fsp.lstat(path.join(fx.layer, 'dir/.wh..wh..opq')));
  const explicit = await fixture(t);
  await apply(await layer(), explicit.layer, { whiteouts: 'overlay' });
  t.true((await fsp.lstat(path.join(explicit.layer, 'gone'))).isCharacterDevice());
});

test("whiteouts: 'plain' keeps .wh. names as ordinary files and directories", async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'dir/', type: 'directory' },
    [{ name: 'dir/.wh..wh..opq' }, 'marker'],
    [{ name: '.wh.gone' }, 'content'],
    [{ name: '.wh.d/inside' }, 'in a .wh. directory'],
    [{ name: '.wh..wh.plnk' }, 'aufs-looking name'],
    { name: 'zero-zero', type: 'character-device', devmajor: 0, devminor: 0 },
  ]);
  const r = await apply(tarball, fx.layer, { whiteouts: 'plain' });
  t.is(await fsp.readFile(path.join(fx.layer, '.wh.gone'), 'utf8'), 'content');
  t.is(await fsp.readFile(path.join(fx.layer, 'dir/.wh..wh..opq'), 'utf8'), 'marker');
  t.is(await fsp.readFile(path.join(fx.layer, '.wh.d/inside'), 'utf8'), 'in a .wh. directory');
  t.is(await fsp.readFile(path.join(fx.layer, '.wh..wh.plnk'), 'utf8'), 'aufs-looking name');
  await t.throwsAsync(fsp.lstat(path.join(fx.layer, 'gone')));
  await t.throwsAsync(fsp.lstat(path.join(fx.layer, 'zero-zero')), undefined, 'a 0:0 char device is just a device: dropped');
  t.is(r.devicesDropped, 1);
});

test("whiteouts: 'plain' still refuses escapes", async (t) => {
  const fx = await fixture(t);
  await t.throwsAsync(apply(await makeTar([[{ name: '../outside/canary' }, 'x']]), fx.layer, { whiteouts: 'plain' }), {
    code: 'INVALID_ARGUMENT',
  });
  const viaLink = await makeTar([{ name: '.wh.l', type: 'symlink', linkname: fx.outside }, [{ name: '.wh.l/canary' }, 'x']]);
  await t.throwsAsync(apply(viaLink, fx.layer, { whiteouts: 'plain' }), { code: 'INVALID_ARGUMENT' });
  t.is(await fsp.readFile(fx.canary, 'utf8'), 'canary\n');
});

test("whiteouts: 'reject' refuses a tar with any .wh. name", async (t) => {
  for (const entries of [[[{ name: '.wh.gone' }, '']], [[{ name: 'd/.wh..wh..opq' }, '']], [[{ name: '.wh.d/f' }, 'x']]] as const) {
    const fx = await fixture(t);
    const tarball = await makeTar(entries as never);
    const err = await t.throwsAsync(apply(tarball, fx.layer, { whiteouts: 'reject' }), { code: 'INVALID_ARGUMENT' });
    t.truthy((err as { hint?: string } | undefined)?.hint);
  }
  const fx = await fixture(t);
  await assertRejected(t, fx, await makeTar([[{ name: '../outside/canary' }, 'x']]));
  await apply(await makeTar([[{ name: 'ok' }, 'x']]), fx.layer, { whiteouts: 'reject' });
  t.is(await fsp.readFile(path.join(fx.layer, 'ok'), 'utf8'), 'x');
});

test("whiteouts: 'delete' (a volume changeset) removes the named files and trees, refuses opaque markers, and never deletes through a symlink", async (t) => {
  const fx = await fixture(t);
  await fsp.writeFile(path.join(fx.layer, 'gone'), 'x');
  await fsp.mkdir(path.join(fx.layer, 'tree/deep'), { recursive: true });
  await fsp.writeFile(path.join(fx.layer, 'tree/deep/f'), 'x');
  await fsp.writeFile(path.join(fx.layer, 'kept'), 'old');
  await apply(await makeTar([[{ name: '.wh.gone' }, ''], [{ name: '.wh.tree' }, ''], [{ name: '.wh.never-there' }, ''], [{ name: 'kept' }, 'new']]), fx.layer, { whiteouts: 'delete' });
  t.deepEqual((await fsp.readdir(fx.layer)).sort(), ['kept']);
  t.is(await fsp.readFile(path.join(fx.layer, 'kept'), 'utf8'), 'new');
  await t.throwsAsync(apply(await makeTar([{ name: 'd/', type: 'directory' }, [{ name: 'd/.wh..wh..opq' }, '']]), fx.layer, { whiteouts: 'delete' }), { code: 'INVALID_ARGUMENT' });
  await fsp.symlink(fx.outside, path.join(fx.layer, 'out'));
  await t.throwsAsync(apply(await makeTar([[{ name: 'out/.wh.canary' }, '']]), fx.layer, { whiteouts: 'delete' }), { code: 'INVALID_ARGUMENT' });
  t.is(await fsp.readFile(fx.canary, 'utf8'), 'canary\n');
});
