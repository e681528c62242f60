import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findExecutable, lookupUser, resolveInRoot, validateWorkdir, validateWorkdirInRoot } from '../../src/runtime/rootfs';

/** A temp dir holding `rootfs/` (with etc/ and bin/) and, beside it, a host file `secret`. */
async function tree(t: ExecutionContext): Promise<{ base: string; root: string; secret: string }> {
  const base = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-rootfs-'));
  t.teardown(() => fs.promises.rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'rootfs');
  await fs.promises.mkdir(path.join(root, 'etc'), { recursive: true });
  await fs.promises.mkdir(path.join(root, 'bin'), { recursive: true });
  const secret = path.join(base, 'secret');
  // Looks like a passwd file: if lookupUser ever read it, user "evil" would be found.
  await fs.promises.writeFile(secret, 'evil:x:4242:4242::/evil:/bin/sh\n');
  return { base, root, secret };
}

const write = (file: string, text: string, mode = 0o644): Promise<void> => fs.promises.writeFile(file, text, { mode });

test('a rootfs whose /etc/passwd links to /etc/shadow reads its own /etc/shadow, never the host one', async (t) => {
  const { root } = await tree(t);
  for (const target of ['/etc/shadow', '../../../../etc/shadow']) {
    await fs.promises.rm(path.join(root, 'etc', 'passwd'), { force: true });
    await fs.promises.symlink(target, path.join(root, 'etc', 'passwd'));
    t.is(await resolveInRoot(root, '/etc/passwd'), path.join(root, 'etc', 'shadow'));
    // The host's /etc/shadow has root; the rootfs has no shadow: root is unknown here.
    await t.throwsAsync(lookupUser(root, 'root'), { code: 'NOT_FOUND' });
    await write(path.join(root, 'etc', 'shadow'), 'root:x:7:8::/r:/bin/sh\n');
    t.like(await lookupUser(root, 'root'), { uid: 7, gid: 8, home: '/r' });
    await fs.promises.rm(path.join(root, 'etc', 'shadow'));
  }
});

test('symlinks that climb out of the rootfs stay inside it, absolute or relative', async (t) => {
  const { root, secret } = await tree(t);
  const outside = path.relative(path.join(root, 'etc'), secret); // ../../secret
  for (const target of [secret, outside, `../../../../../../..${secret}`]) {
    await fs.promises.rm(path.join(root, 'etc', 'passwd'), { force: true });
    await fs.promises.symlink(target, path.join(root, 'etc', 'passwd'));
    const resolved = await resolveInRoot(root, '/etc/passwd');
    t.true(resolved.startsWith(`${root}/`), `${target} -> ${resolved}`);
    await t.throwsAsync(lookupUser(root, 'evil'), { code: 'NOT_FOUND' });
  }
});

test('resolveInRoot clamps .. at the root and follows symlinks inside it', async (t) => {
  const { root } = await tree(t);
  await fs.promises.mkdir(path.join(root, 'real', 'dir'), { recursive: true });
  await fs.promises.symlink('/real', path.join(root, 'abs'));
  await fs.promises.symlink('real/dir', path.join(root, 'rel'));
  await fs.promises.symlink('../../..', path.join(root, 'real', 'dir', 'up'));
  t.is(await resolveInRoot(root, '/../../../etc'), path.join(root, 'etc'));
  t.is(await resolveInRoot(root, 'abs/dir/x'), path.join(root, 'real', 'dir', 'x'));
  t.is(await resolveInRoot(root, '/rel/../dir'), path.join(root, 'real', 'dir'), '.. applies to the resolved path');
  t.is(await resolveInRoot(root, '/rel/up/etc'), path.join(root, 'etc'));
  t.is(await resolveInRoot(root, '/'), root);
  t.is(await resolveInRoot(root, '/missing/a/../b'), path.join(root, 'missing', 'b'));
});

test('a symlink loop is an INVALID_ARGUMENT, not a hang', async (t) => {
  const { root } = await tree(t);
  await fs.promises.symlink('/b', path.join(root, 'a'));
  await fs.promises.symlink('/a', path.join(root, 'b'));
  const err = await t.throwsAsync(resolveInRoot(root, '/a/x'), { code: 'INVALID_ARGUMENT' });
  t.truthy((err as { hint?: string }).hint);
});

test('lookupUser resolves names, numbers and groups like docker --user', async (t) => {
  const { root } = await tree(t);
  await write(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n# comment\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n');
  await write(path.join(root, 'etc', 'group'), 'root:x:0:\nwheel:x:10:app,other\naudio:x:29:app\napp:x:1000:\nnogroup:x:65534:\n');
  t.deepEqual(await lookupUser(root, ''), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
  t.deepEqual(await lookupUser(root, 'nobody'), { uid: 65534, gid: 65534, additionalGids: [], home: '/nonexistent' });
  t.deepEqual(await lookupUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app' });
  t.deepEqual(await lookupUser(root, '1000'), { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app' });
  t.deepEqual(await lookupUser(root, 'app:wheel'), { uid: 1000, gid: 10, additionalGids: [29], home: '/home/app' });
  t.deepEqual(await lookupUser(root, '4000'), { uid: 4000, gid: 0, additionalGids: [], home: '/' });
  t.deepEqual(await lookupUser(root, '4000:4001'), { uid: 4000, gid: 4001, additionalGids: [], home: '/' });
  t.deepEqual(await lookupUser(root, 'nobody:nogroup'), { uid: 65534, gid: 65534, additionalGids: [], home: '/nonexistent' });
  const noUser = await t.throwsAsync(lookupUser(root, 'ghost'), { code: 'NOT_FOUND' });
  t.truthy((noUser as { hint?: string }).hint);
  await t.throwsAsync(lookupUser(root, 'app:ghosts'), { code: 'NOT_FOUND' });
  await t.throwsAsync(lookupUser(root, 'a:b:c'), { code: 'INVALID_ARGUMENT' });
  await t.throwsAsync(lookupUser(root, '99999999999'), { code: 'INVALID_ARGUMENT' });
});

test('lookupUser needs no /etc/passwd or /etc/group for numeric ids', async (t) => {
  const { root } = await tree(t);
  t.deepEqual(await lookupUser(root, '123:456'), { uid: 123, gid: 456, additionalGids: [], home: '/' });
  t.deepEqual(await lookupUser(root, ''), { uid: 0, gid: 0, additionalGids: [], home: '/' });
  await t.throwsAsync(lookupUser(root, 'root'), { code: 'NOT_FOUND' });
});

test('lookupUser treats a non-regular /etc/passwd (a fifo, a dir) as missing', async (t) => {
  const { root } = await tree(t);
  await fs.promises.mkdir(path.join(root, 'etc', 'passwd'));
  t.like(await lookupUser(root, '5'), { uid: 5, gid: 0 });
  await t.throwsAsync(lookupUser(root, 'root'), { code: 'NOT_FOUND' });
  execFileSync('mkfifo', [path.join(root, 'etc', 'group')]); // opening it must not block
  await t.throwsAsync(lookupUser(root, '5:root'), { code: 'NOT_FOUND' }, 'a fifo /etc/group is not read');
  t.like(await lookupUser(root, '5:6'), { uid: 5, gid: 6 });
});

test('findExecutable searches PATH inside the rootfs and wants a regular file with an x bit', async (t) => {
  const { root } = await tree(t);
  await fs.promises.mkdir(path.join(root, 'usr', 'bin'), { recursive: true });
  await write(path.join(root, 'bin', 'busybox'), '', 0o755);
  await fs.promises.symlink('busybox', path.join(root, 'bin', 'sh'));
  await write(path.join(root, 'usr', 'bin', 'data'), '', 0o644);
  await fs.promises.mkdir(path.join(root, 'usr', 'bin', 'adir'));
  await fs.promises.symlink('/bin/bash', path.join(root, 'usr', 'bin', 'bash')); // the host has one; the rootfs does not
  const PATH = '/usr/bin:relative:/bin';
  t.is(await findExecutable(root, 'sh', PATH), '/bin/sh');
  t.is(await findExecutable(root, '/bin/sh', PATH), '/bin/sh');
  t.is(await findExecutable(root, 'bin/busybox', ''), '/bin/busybox');
  t.is(await findExecutable(root, 'data', PATH), undefined, 'no x bit');
  t.is(await findExecutable(root, 'adir', PATH), undefined, 'a directory');
  t.is(await findExecutable(root, 'bash', PATH), undefined, "the host's /bin/bash does not count");
  t.is(await findExecutable(root, 'nope', PATH), undefined);
  t.is(await findExecutable(root, '', PATH), undefined);
});

test('validateWorkdir wants an absolute path outside /proc (CVE-2024-21626)', (t) => {
  t.is(validateWorkdir('/app/'), '/app');
  t.is(validateWorkdir('/a/./b/../c'), '/a/c');
  t.is(validateWorkdir('/procfs'), '/procfs');
  t.is(validateWorkdir('/'), '/');
  for (const bad of ['/proc', '/proc/', '/proc/self/fd/7', '/x/../proc/1/cwd', '//proc//self', '/./proc']) {
    const err = t.throws(() => validateWorkdir(bad), { code: 'INVALID_ARGUMENT' }, bad);
    t.truthy((err as { hint?: string }).hint);
  }
  t.throws(() => validateWorkdir('app'), { code: 'INVALID_ARGUMENT' });
  t.throws(() => validateWorkdir(''), { code: 'INVALID_ARGUMENT' });
});

test('validateWorkdirInRoot also refuses a rootfs symlink that leads into /proc', async (t) => {
  const { root } = await tree(t);
  await fs.promises.symlink('/proc/self/fd/7', path.join(root, 'work'));
  await fs.promises.mkdir(path.join(root, 'app'));
  await t.throwsAsync(validateWorkdirInRoot(root, '/work'), { code: 'INVALID_ARGUMENT' });
  t.is(await validateWorkdirInRoot(root, '/app/'), '/app');
});
