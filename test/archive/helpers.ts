/**
 * Shared fixtures for the archive tests (tars come from ../helpers/tar): a temp dir per test with `layer/` to apply into and a sibling
 * `outside/` holding a canary, and tree snapshots to prove nothing outside changed.
 */
import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { sha256 } from '../helpers/digest';
import { applyLayer } from '../../volumes/archive/apply';
import { unquotePath } from '../../volumes/archive/tools';

export interface Fixture {
  tmp: string;
  layer: string;
  outside: string;
  canary: string;
}

export async function fixture(t: ExecutionContext): Promise<Fixture> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-archive-'));
  t.teardown(() => fsp.rm(tmp, { recursive: true, force: true }));
  const layer = path.join(tmp, 'layer');
  const outside = path.join(tmp, 'outside');
  await fsp.mkdir(layer);
  await fsp.mkdir(outside);
  const canary = path.join(outside, 'canary');
  await fsp.writeFile(canary, 'canary\n');
  return { tmp, layer, outside, canary };
}

export function apply(buf: Buffer, dir: string, opts?: Parameters<typeof applyLayer>[2]) {
  return applyLayer(Readable.from([buf]), dir, opts);
}

/** Everything in `root` (minus `skip`): type, mode, owner, size, nlink, content hash. */
export async function snapshot(root: string, skip?: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const p = path.join(dir, name);
      if (p === skip) continue;
      const st = await fsp.lstat(p);
      let v = `${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} ${st.size} ${st.mtimeMs}`;
      if (st.isFile()) v += ' ' + sha256(await fsp.readFile(p));
      if (st.isSymbolicLink()) v += ' -> ' + (await fsp.readlink(p));
      out[path.relative(root, p)] = v;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out;
}

/**
 * Apply a hostile tar: it must reject with INVALID_ARGUMENT (and a hint), and nothing
 * outside `layer/` may change (the canary keeps its content and its single link).
 */
export async function assertRejected(t: ExecutionContext, fx: Fixture, buf: Buffer): Promise<void> {
  const before = await snapshot(fx.tmp, fx.layer);
  const passwd = sha256(await fsp.readFile('/etc/passwd'));
  const err = await t.throwsAsync(apply(buf, fx.layer), { code: 'INVALID_ARGUMENT' } as never);
  t.truthy((err as { hint?: string } | undefined)?.hint, 'the error says what to do');
  t.deepEqual(await snapshot(fx.tmp, fx.layer), before, 'nothing outside layer/ changed');
  t.is(await fsp.readFile(fx.canary, 'utf8'), 'canary\n');
  t.is(sha256(await fsp.readFile('/etc/passwd')), passwd);
}

/**
 * A comparable description of a tree: per path its type, mode, owner, mtime (seconds),
 * content or link target, device numbers, opaque xattr, and the first path sharing its
 * inode (so hardlink structure compares too).
 */
export async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const firstByIno = new Map<string, string>();
  const opaque = new Set(
    execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '^trusted\\.overlay\\.opaque$', '.'], { cwd: root })
      .toString()
      .split('\n')
      .filter((l) => l.startsWith('# file: '))
      .map((l) => unquotePath(l.slice(8))),
  );
  const walk = async (rel: string) => {
    for (const name of (await fsp.readdir(path.join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = await fsp.lstat(p);
      const ino = `${st.dev}:${st.ino}`;
      if (!firstByIno.has(ino)) firstByIno.set(ino, r);
      let v = `${st.mode.toString(8)} ${st.uid}:${st.gid} t${Math.floor(st.mtimeMs / 1000)} =${firstByIno.get(ino)}`;
      if (st.isFile()) v += ' ' + sha256(await fsp.readFile(p));
      if (st.isSymbolicLink()) v += ' -> ' + (await fsp.readlink(p));
      if (st.isCharacterDevice() || st.isBlockDevice()) v += ` rdev${st.rdev}`;
      if (opaque.has(r)) v += ' opaque';
      out[r] = v;
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}
