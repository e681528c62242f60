import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { signalZero } from '../../volumes/shared/process';
import type { TestDaemon } from './daemon';
import { eventually } from './eventually';

/**
 * Prebuilt test images, made once per test run and loaded into each test daemon's root.
 * `TestDaemon.start` loads busybox unless told otherwise (`images: []`); others on demand:
 *
 *   await loadImages(d, 'redis', 'memcached');
 *
 * The first daemon of the run that asks for an image makes it (vendors the host's binaries,
 * as `berth image vendor` does) and saves it as an image tar in the run's cache directory;
 * every later daemon loads that tar through the API (`images.load`), which is cheaper than
 * vendoring again: on this 2-core machine under load, redis vendor ~3.9 s (5.5 s through
 * the CLI) against load ~2.4 s, memcached ~3.9 s against ~2.1 s, busybox made from the
 * host's ~4.2 s against load ~1.7 s (medians of 5).
 *
 * One cache per run: the directory is keyed by the ava process (every worker's parent) and
 * its start time, and a detached watcher removes it when that process ends — nothing is left
 * behind, and a later run never sees an earlier run's images. Workers run side by side: a
 * lock file (O_EXCL, holding the maker's pid) makes each image once; the others wait for
 * the tar, and take over if the maker died without one.
 *
 * Tests of vendoring itself (`images/vendor.test.ts`, `cli/images-cli.test.ts`) vendor for
 * real, and tests of busybox's first use leave it to the daemon; this is for tests that
 * only need the image.
 */

export type CachedImage = 'redis' | 'memcached' | 'busybox';

interface Recipe {
  /** The image's name in the daemon and in the tar. */
  ref: string;
  make(d: TestDaemon): Promise<unknown>;
}

const RECIPES: Record<CachedImage, Recipe> = {
  // As `berth image vendor redis /usr/bin/redis-server /usr/bin/redis-cli`.
  redis: { ref: 'redis:latest', make: (d) => d.images.vendor({ ref: 'redis', binaries: ['/usr/bin/redis-server', '/usr/bin/redis-cli'] }) },
  // As `berth image vendor memcached /usr/bin/memcached`.
  memcached: { ref: 'memcached:latest', make: (d) => d.images.vendor({ ref: 'memcached', binaries: ['/usr/bin/memcached'] }) },
  // The daemon makes busybox from the host's on first use (src/images/busybox.ts); a
  // loaded one is found first and used as is.
  busybox: { ref: 'busybox:latest', make: (d) => d.images.resolve('busybox') },
};

/** Put each named image into `d` (made once per run, then loaded). */
export async function loadImages(d: TestDaemon, ...names: CachedImage[]): Promise<void> {
  for (const name of names) await loadImage(d, name);
}

async function loadImage(d: TestDaemon, name: CachedImage): Promise<void> {
  const recipe = RECIPES[name];
  // Already there (every test daemon starts with busybox): a list, which makes nothing (an
  // inspect of busybox would make it).
  if ((await d.images.list({ filters: { reference: [recipe.ref] } })).length) return;
  const dir = cacheDir();
  const tar = path.join(dir, `${name}.tar`);
  const lock = path.join(dir, `${name}.lock`);
  // Holding the lock: the tar may have landed between the look and the lock.
  const claim = (): 'cached' | 'mine' => {
    if (!fs.existsSync(tar)) return 'mine';
    fs.rmSync(lock, { force: true });
    return 'cached';
  };
  // Generous: another worker may be making it on a loaded machine.
  const state = await eventually(() => (fs.existsSync(tar) ? 'cached' : takeLock(lock) && claim()), {
    timeout: 300_000,
    interval: 100,
    message: `the ${name} image in the run's cache ${dir}`,
  });
  if (state === 'mine') {
    try {
      // Made in this daemon, then saved for the others: this daemon has it already.
      await recipe.make(d);
      const part = `${tar}.part-${process.pid}`;
      await d.images.save([recipe.ref], fs.createWriteStream(part));
      fs.renameSync(part, tar);
      return;
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }
  const { loaded } = await d.images.load(fs.createReadStream(tar));
  if (!loaded.some((l) => l.includes(recipe.ref))) throw new Error(`loading ${tar} gave ${JSON.stringify(loaded)}, not ${recipe.ref}`);
}

/** Create the lock (O_EXCL) or report another live holder; a dead holder's lock is broken. */
function takeLock(lock: string): boolean {
  try {
    fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const holder = Number(fs.readFileSync(lock, 'utf8') || 0);
  if (holder && !signalZero(holder)) fs.rmSync(lock, { force: true }); // retried on the next poll
  return false;
}


let dirOfRun: string | undefined;

/**
 * The run's cache: `<tmp>/berth-test-images-<pid>-<start>` of the ava process (the parent
 * of every worker), removed by a detached watcher when that process exits.
 */
function cacheDir(): string {
  if (dirOfRun) return dirOfRun;
  const owner = process.ppid;
  // Field 22 of /proc/<pid>/stat: its start time, so a reused pid is another run.
  const stat = fs.readFileSync(`/proc/${owner}/stat`, 'utf8');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  const dir = path.join(os.tmpdir(), `berth-test-images-${owner}-${start}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    const watcher = spawn('sh', ['-c', 'tail --pid="$1" -s 0.2 -f /dev/null; rm -rf -- "$2"', 'sh', String(owner), dir], {
      detached: true,
      stdio: 'ignore',
    });
    watcher.unref();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  dirOfRun = dir;
  return dir;
}
