import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { watchExit } from '../../src/engine/exit-watch';

const RECORD = { exitCode: 3, signal: null, oomKilled: false, finishedAt: '2026-01-02T03:04:05.000000000Z' };

test('an exit record that appears while the monitor is being checked is read at once, not after the next poll', async (t) => {
  // The poll is ten minutes: only the directory watch can end this wait in time. An event
  // that came during the monitorGone check used to be dropped, leaving the wait to the poll
  // (a whole second added to `docker run --rm` whenever the race was lost).
  t.timeout(120_000);
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-exit-watch-'));
  t.teardown(() => fs.promises.rm(dir, { recursive: true, force: true }));
  const exitFile = path.join(dir, 'exit.json');
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  // A watch of our own on the same directory: libuv reads one inotify queue per loop and
  // hands each event to every watch of the directory in the same turn, so once ours has it
  // (and one more turn has passed) watchExit's watch has it too.
  let renamed!: () => void;
  const seen = new Promise<void>((r) => (renamed = r));
  const ours = fs.watch(dir, (_, name) => name === 'exit.json' && renamed());
  t.teardown(() => ours.close());
  let checks = 0;
  const monitorGone = async (): Promise<boolean> => {
    checks++;
    if (checks === 1) {
      // As the monitor writes it: a temp file renamed into place.
      await fs.promises.writeFile(`${exitFile}.tmp`, JSON.stringify(RECORD));
      await fs.promises.rename(`${exitFile}.tmp`, exitFile);
      // The watch event arrives while this check is still running.
      await seen;
      await new Promise((r) => setImmediate(r));
    }
    return false;
  };
  const rec = await watchExit(exitFile, ac.signal, 600_000, monitorGone);
  t.is(rec.exitCode, 3);
  t.is(checks, 1, 'the record was read right after the check that saw it appear');
});
