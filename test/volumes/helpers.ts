/**
 * Fixtures for the volume tests: a temp dir per test (`root/` for the driver, `outside/`
 * with a canary), and a teardown that closes every driver the test opened and then checks
 * the temp dir with the suite's leak policy (test/helpers/leaks.ts): a driver whose close
 * failed, or a mount, loop device or process left under the temp dir, fails the test that
 * left it (after the fixture removed it, so the next test starts clean).
 */
import type { ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { VolumeDriver } from '../../volumes/drivers/driver';
import { mountsUnder } from '../helpers/mounts';
import { releaseRoot } from '../helpers/leaks';
import { daemonSlots } from '../helpers/daemon';

export const MiB = 1024 * 1024;

export interface Env {
  tmp: string;
  /** The driver's root. */
  root: string;
  /** A directory outside the driver's root, with `canary` in it. */
  outside: string;
  canary: string;
  /** Open a driver on `root` (closed in teardown). */
  open(): Promise<VolumeDriver>;
  /** The driver opened first. */
  d: VolumeDriver;
}

export async function setup(t: ExecutionContext, factory: (root: string) => Promise<VolumeDriver>): Promise<Env> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-volumes-'));
  const opened: VolumeDriver[] = [];
  /** The daemon slot (daemonSlots) held while this test's btrfs pool is open. */
  let held: (() => void) | undefined;
  t.teardown(async () => {
    const problems: string[] = [];
    try {
      for (const d of opened) await d.close().catch((e: Error & { code?: string }) => problems.push(`closing a ${d.name} driver failed: ${e.code ?? ''} ${e.message}`));
      await releaseRoot(`the volume test's ${tmp}`, { root: tmp }, problems);
    } finally {
      held?.();
    }
  });
  const root = path.join(tmp, 'root');
  const outside = path.join(tmp, 'outside');
  await fsp.mkdir(outside);
  const canary = path.join(outside, 'canary');
  await fsp.writeFile(canary, 'canary\n');
  // A btrfs pool (a loop device, a filesystem) weighs like a daemon: it holds one of the
  // worker's daemon slots while open, so a file of btrfs tests does not open ten at once.
  // Every driver of a test opens the same pool (on `root`): one slot per test, taken by the
  // first open (a second open must not wait for a slot its own test holds).
  const open = async () => {
    const release = held ? undefined : await daemonSlots.acquire();
    let d: VolumeDriver;
    try {
      d = await factory(root);
    } catch (e) {
      release?.();
      throw e;
    }
    opened.push(d);
    if (release && d.name === 'btrfs') held = release;
    else release?.();
    return d;
  };
  return { tmp, root, outside, canary, open, d: await open() };
}

/**
 * Unmount everything under `dir` (deepest first) and detach loop devices backed by files
 * under it: for what a test mounted by hand. A fixture's own end is `releaseRoot`, which
 * reports what it finds instead of only removing it.
 */
export function cleanupHost(dir: string): void {
  for (const m of mountsUnder(dir)) {
    if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
  }
  for (const line of spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n')) {
    const m = /^(\/dev\/loop\d+):.*\((.*)\)$/.exec(line);
    if (m && m[2].startsWith(dir + '/')) spawnSync('losetup', ['-d', m[1]]);
  }
}

export async function writeFile(dir: string, rel: string, data: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await fsp.writeFile(path.join(dir, rel), data);
}

export async function readFile(dir: string, rel: string): Promise<string> {
  return fsp.readFile(path.join(dir, rel), 'utf8');
}

export function random(n: number): Buffer {
  return randomBytes(n);
}

/** Loop devices attached to `file` right now. */
export function loopsOf(file: string): string[] {
  return execFileSync('losetup', ['-j', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

/** Mount points of btrfs filesystems under `dir`. */
export function btrfsMountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'btrfs' && (f[1] === dir || f[1]?.startsWith(dir + '/')))
    .map((f) => f[1]);
}

/** The `volumes/` directory that holds a driver's volumes, found from a mountpoint (`volumes/<name>/_data`). */
export function volumesDirOf(mountpoint: string): string {
  return path.dirname(path.dirname(mountpoint));
}

export async function ls(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).sort();
}
