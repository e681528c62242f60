import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { digest } from '../helpers/digest';
import { mountsUnder } from '../helpers/mounts';
import { makeTar } from '../helpers/tar';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { mountAll, unmountAll } from '../../volumes/layers/mount';
import { ImageStore } from '../../src/images/store';

export const exec = promisify(execFile);

/** Where the tests find the fixtures (the .ts tree: fixtures are not compiled). */
export const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'test', 'images', 'fixtures');

export interface Env {
  root: string;
  snapshotter: OverlaySnapshotter;
  store: ImageStore;
  /** Open the store (and snapshotter) again on the same root, as a restarted daemon would. */
  reopen(): Promise<ImageStore>;
}

/** A fresh data root with a snapshotter and an image store; all of it removed in teardown. */
export async function openEnv(t: ExecutionContext, existingRoot?: string): Promise<Env> {
  const root = existingRoot ?? (await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-img-')));
  if (!existingRoot) t.teardown(() => removeRoot(root));
  const env = {
    root,
    snapshotter: await OverlaySnapshotter.open(path.join(root, 'layers')),
  } as Env;
  env.store = await ImageStore.open({ root: path.join(root, 'images'), snapshotter: env.snapshotter, tmpDir: path.join(root, 'tmp') });
  env.reopen = async () => {
    await env.store.close();
    await env.snapshotter.close();
    env.snapshotter = await OverlaySnapshotter.open(path.join(root, 'layers'));
    env.store = await ImageStore.open({ root: path.join(root, 'images'), snapshotter: env.snapshotter, tmpDir: path.join(root, 'tmp') });
    return env.store;
  };
  t.teardown(async () => {
    await env.store.close();
    await env.snapshotter.close();
  });
  return env;
}

/** Unmount everything under `root` (deepest first), then delete it. */
export async function removeRoot(root: string): Promise<void> {
  for (const p of mountsUnder(root)) await unmountAll(p);
  await fs.promises.rm(root, { recursive: true, force: true });
}

/** Mount image `ref` read-only (a snapshotter view) and return the mount point. */
export async function mountImage(t: ExecutionContext, env: Env, ref: string): Promise<string> {
  const { topLayer } = await env.store.resolve(ref);
  const key = `test-view-${randomBytes(6).toString('hex')}`;
  const mounts = await env.snapshotter.view(key, topLayer);
  const dir = path.join(env.root, key);
  await fs.promises.mkdir(dir);
  t.teardown(async () => {
    await unmountAll(dir);
    await env.snapshotter.remove(key).catch(() => undefined);
  });
  await mountAll(mounts, dir);
  return dir;
}

/** A small root filesystem tar: a few files, a directory, a symlink. */
export function sampleRootfs(): Promise<Buffer> {
  return makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', data: 'sample\n' },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/tool', data: '#!/bin/sh\necho tool\n', mode: 0o755 },
    { name: 'data/', type: 'directory', mode: 0o700 },
    { name: 'data/link', type: 'symlink', linkname: '../etc/hostname' },
  ]);
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/** Every entry under `dir` (relative path → type, mode, owner, size, content hash, link target). */
export async function readTree(dir: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const visit = async (rel: string): Promise<void> => {
    const p = path.join(dir, rel);
    const st = await fs.promises.lstat(p);
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (st.isDirectory()) {
      out[rel || '.'] = { type: 'dir', ...base };
      for (const n of (await fs.promises.readdir(p)).sort()) await visit(path.join(rel, n));
    } else if (st.isSymbolicLink()) {
      out[rel] = { type: 'symlink', ...base, mode: 0, target: await fs.promises.readlink(p) };
    } else if (st.isFile()) {
      out[rel] = { type: 'file', ...base, size: st.size, sha256: digest(await fs.promises.readFile(p)) };
    } else {
      out[rel] = { type: 'other', ...base };
    }
  };
  await visit('');
  return out;
}

/** podman with its own storage (vfs) under `dir`; everything removed in teardown. */
export async function podmanEnv(t: ExecutionContext): Promise<(args: string[]) => Promise<string>> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-podman-'));
  const base = ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'vfs'];
  const podman = async (args: string[]) => (await exec('podman', [...base, ...args], { maxBuffer: 64 << 20 })).stdout;
  t.teardown(async () => {
    await exec('podman', [...base, 'image', 'unmount', '--all', '--force']).catch(() => undefined);
    await removeRoot(dir);
  });
  return podman;
}

/** Names of every snapshot. */
export async function snapshotNames(env: Env): Promise<string[]> {
  const names: string[] = [];
  await env.snapshotter.walk((i) => {
    names.push(i.name);
  });
  return names.sort();
}
