/**
 * applyLayer on well-formed layers: metadata kept, whiteouts converted to the overlayfs
 * format (and honoured by a real overlay mount), diffID/size/progress, compression
 * detection (plain, gzip, zstd), and the input errors that are not escapes (truncated, garbage, xz).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { applyLayer } from '../../volumes/archive/apply';
import { apply, fixture } from './helpers';
import { sha256 } from '../helpers/digest';
import { makeTar } from '../helpers/tar';
import { stdoutOf } from '../helpers/proc';

const T = (s: number) => new Date(s * 1000);

test('modes, owners, mtimes, symlinks, hardlinks and fifos are kept', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: 'd/', type: 'directory', mode: 0o1777, uid: 1000, gid: 1001, mtime: T(1_500_000_000) },
    [{ name: 'd/f', mode: 0o4755, uid: 1234, gid: 5678, mtime: T(1_400_000_000) }, 'hello'],
    { name: 'd/s', type: 'symlink', linkname: 'f', uid: 42, gid: 43, mtime: T(1_300_000_000) },
    { name: 'd/h', type: 'link', linkname: 'd/f' },
    { name: 'p', type: 'fifo', mode: 0o640, uid: 7, gid: 8, mtime: T(1_200_000_000) },
    { name: 'zero', type: 'file', mode: 0o100000 }, // mode 000 (tar-stream needs a type bit to keep 0)
  ]);
  const r = await apply(tarball, fx.layer);
  t.is(r.entries, 6);
  const st = (p: string) => fsp.lstat(path.join(fx.layer, p));
  const d = await st('d');
  t.is(d.mode & 0o7777, 0o1777);
  t.deepEqual([d.uid, d.gid, d.mtimeMs], [1000, 1001, 1_500_000_000_000], 'dir mtime set after its contents');
  const f = await st('d/f');
  t.is(f.mode & 0o7777, 0o4755, 'setuid survives the chown');
  t.deepEqual([f.uid, f.gid, f.mtimeMs, f.nlink], [1234, 5678, 1_400_000_000_000, 2]);
  t.is((await st('d/h')).ino, f.ino);
  const s = await st('d/s');
  t.true(s.isSymbolicLink());
  t.deepEqual([s.uid, s.gid, s.mtimeMs], [42, 43, 1_300_000_000_000]);
  t.is(await fsp.readlink(path.join(fx.layer, 'd/s')), 'f');
  const p = await st('p');
  t.true(p.isFIFO());
  t.deepEqual([p.mode & 0o7777, p.uid, p.gid, p.mtimeMs], [0o640, 7, 8, 1_200_000_000_000]);
  t.is((await st('zero')).mode & 0o7777, 0);
});

test('whiteouts become 0:0 char devices and .wh..wh..opq an opaque xattr', async (t) => {
  const fx = await fixture(t);
  await fsp.writeFile(path.join(fx.layer, 'gone'), 'from an earlier entry'); // replaced by the whiteout
  const tarball = await makeTar([
    { name: '.wh.gone', uid: 5, gid: 6 },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/.wh..wh..opq' },
    [{ name: 'opq/new' }, 'new'],
    { name: 'implicit/.wh..wh..opq' },
  ]);
  await apply(tarball, fx.layer);
  const gone = await fsp.lstat(path.join(fx.layer, 'gone'));
  t.true(gone.isCharacterDevice());
  t.deepEqual([gone.rdev, gone.mode & 0o7777, gone.uid, gone.gid], [0, 0, 5, 6]);
  for (const d of ['opq', 'implicit']) {
    t.is(stdoutOf('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', d], { cwd: fx.layer }), 'y');
  }
  t.deepEqual((await fsp.readdir(fx.layer)).sort(), ['gone', 'implicit', 'opq']);
});

test('a real overlay mount hides whited-out and opaque lower files', async (t) => {
  const fx = await fixture(t);
  const lower = path.join(fx.tmp, 'lower');
  const work = path.join(fx.tmp, 'work');
  const merged = path.join(fx.tmp, 'merged');
  for (const d of [lower, work, merged, path.join(lower, 'opq')]) await fsp.mkdir(d, { recursive: true });
  await fsp.writeFile(path.join(lower, 'gone'), 'x');
  await fsp.writeFile(path.join(lower, 'keep'), 'x');
  await fsp.writeFile(path.join(lower, 'opq/old'), 'x');
  await apply(await makeTar([{ name: '.wh.gone' }, { name: 'opq/.wh..wh..opq' }, [{ name: 'opq/new' }, 'n']]), fx.layer);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${fx.layer},workdir=${work}`, merged]);
  t.teardown(() => void execFileSync('umount', [merged])); // runs before the temp dir is removed
  t.deepEqual((await fsp.readdir(merged)).sort(), ['keep', 'opq']);
  t.deepEqual(await fsp.readdir(path.join(merged, 'opq')), ['new']);
});

test('later entries win: whiteout then file, dir over dir merges, file over dir replaces', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([
    { name: '.wh.x' },
    [{ name: 'x' }, 'back'],
    { name: 'd/', type: 'directory', mode: 0o755 },
    [{ name: 'd/a' }, 'a'],
    { name: 'd/', type: 'directory', mode: 0o700 },
    { name: 'e/', type: 'directory' },
    { name: 'e/.wh..wh..opq' },
    [{ name: 'e' }, 'now a file'],
    [{ name: 'f' }, 'one'],
    { name: 'f2', type: 'link', linkname: 'f' },
    [{ name: 'f' }, 'two'],
  ]);
  await apply(tarball, fx.layer);
  const read = (p: string) => fsp.readFile(path.join(fx.layer, p), 'utf8');
  t.is(await read('x'), 'back');
  t.is(await read('d/a'), 'a');
  t.is((await fsp.stat(path.join(fx.layer, 'd'))).mode & 0o777, 0o700);
  t.is(await read('e'), 'now a file');
  t.is(await read('f'), 'two');
  t.is(await read('f2'), 'one', 'replacing a file never writes through its other links');
});

test('diffID and size are those of the tar bytes; onBytes counts the input', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([[{ name: 'a' }, 'x'.repeat(100_000)]]);
  let seen = 0;
  const r = await apply(tarball, fx.layer, { onBytes: (n) => (seen += n) });
  t.is(r.diffID, 'sha256:' + sha256(tarball));
  t.is(r.size, tarball.length);
  t.is(seen, tarball.length);
});

test('gzip input is detected and the diffID is of the uncompressed tar', async (t) => {
  const fx = await fixture(t);
  const tarball = await makeTar([[{ name: 'a/b' }, 'hello']]);
  const gz = gzipSync(tarball);
  let seen = 0;
  const r = await apply(gz, fx.layer, { onBytes: (n) => (seen += n) });
  t.is(r.diffID, 'sha256:' + sha256(tarball));
  t.is(r.size, tarball.length);
  t.is(seen, gz.length);
  t.is(await fsp.readFile(path.join(fx.layer, 'a/b'), 'utf8'), 'hello');
});

test('input arriving in tiny chunks applies the same', async (t) => {
  const fx = await fixture(t);
  const tarball = gzipSync(await makeTar([[{ name: 'a' }, 'abc'.repeat(1000)]]));
  const chunks = Array.from({ length: tarball.length }, (_, i) => tarball.subarray(i, i + 1));
  await applyLayer(Readable.from(chunks), fx.layer);
  t.is(await fsp.readFile(path.join(fx.layer, 'a'), 'utf8'), 'abc'.repeat(1000));
});

const rejects = (title: string, input: () => Promise<Buffer>) =>
  test(title, async (t) => {
    const fx = await fixture(t);
    const err = await t.throwsAsync(apply(await input(), fx.layer), { code: 'INVALID_ARGUMENT' });
    t.truthy((err as { hint?: string }).hint);
  });

rejects('xz input is refused with a hint', async () => Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(100)]));
rejects('a broken zstd stream is rejected', async () => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(100)]));

test('a zstd layer applies (registries serve tar+zstd layers)', async (t) => {
  const fx = await fixture(t);
  await applyLayer(Readable.from([zstdCompressSync(await makeTar([[{ name: 'z' }, 'zstd'.repeat(100)]]))]), fx.layer);
  t.is(await fsp.readFile(path.join(fx.layer, 'z'), 'utf8'), 'zstd'.repeat(100));
});
rejects('a truncated tar is rejected', async () => (await makeTar([[{ name: 'a' }, 'x'.repeat(5000)]])).subarray(0, 2000));
rejects('a truncated gzip is rejected', async () => {
  const gz = gzipSync(await makeTar([[{ name: 'a' }, Buffer.alloc(50_000, 7)]]));
  return gz.subarray(0, gz.length - 20);
});
rejects('non-tar garbage is rejected', async () => Buffer.from('this is not a tar archive, just some text\n'.repeat(40)));
rejects('empty input is rejected', async () => Buffer.alloc(0));

test('a missing layer directory is a precondition error', async (t) => {
  const fx = await fixture(t);
  await t.throwsAsync(apply(await makeTar([]), path.join(fx.tmp, 'nope')), { code: 'FAILED_PRECONDITION' });
});

test('user.* and security.capability pax xattrs are applied', async (t) => {
  const fx = await fixture(t);
  // cap_net_raw, permitted+effective (VFS_CAP_REVISION_2): valid UTF-8 bytes, so it survives.
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const tarball = await makeTar([
    [{ name: 'ping', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': cap.toString('latin1'), 'SCHILY.xattr.user.k': 'v' } }, 'elf'],
  ]);
  await apply(tarball, fx.layer);
  t.is(stdoutOf('getfattr', ['--only-values', '-n', 'user.k', 'ping'], { cwd: fx.layer }), 'v');
  t.true(stdoutOf('getfattr', ['-e', 'hex', '-n', 'security.capability', 'ping'], { cwd: fx.layer }).includes('=0x' + cap.toString('hex')));
});

test('a hardlink to a fifo made earlier in the same layer links the fifo', async (t) => {
  const fx = await fixture(t);
  await apply(await makeTar([{ name: 'p', type: 'fifo' }, { name: 'q', type: 'link', linkname: 'p' }]), fx.layer);
  const [p, q] = await Promise.all(['p', 'q'].map((n) => fsp.lstat(path.join(fx.layer, n))));
  t.true(q.isFIFO());
  t.is(p.ino, q.ino);
});
