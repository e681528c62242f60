import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { readLogs, type LogEntry } from '../../src/engine/logs';
import { appendLines, collect, deferred, followerAtEnd, followerMissed, line, rotate, texts, tmpLog, ts, watchFollowers } from './jsonlog';

const T0 = 1_800_000_000;

test.before(watchFollowers);

/** The next entry of a follower, failing the test instead of hanging (a hang guard: a loaded machine is slow). */
async function next(it: AsyncIterator<LogEntry>, ms = 30_000): Promise<IteratorResult<LogEntry>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`no entry within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([it.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function nextText(it: AsyncIterator<LogEntry>): Promise<string | undefined> {
  const r = await next(it);
  return r.done ? undefined : r.value.log.toString('utf8').replace(/\n$/, '');
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

// ---- reading what is there ----------------------------------------------------------

test('a missing log file (a container that never ran) yields nothing', async (t) => {
  const { dir, log } = tmpLog(t);
  t.deepEqual(await collect(readLogs(log)), []);
  t.deepEqual(await collect(readLogs(path.join(dir, 'no-such-dir', 'x.log'), { tail: 5 })), []);
});

test('entries come oldest first: the rotated files from the highest number, then the log', async (t) => {
  const { log } = tmpLog(t);
  appendLines(`${log}.2`, ['a', 'b'], T0);
  appendLines(`${log}.1`, ['c', 'd'], T0 + 2);
  appendLines(log, ['e'], T0 + 4);
  const got = await collect(readLogs(log));
  t.deepEqual(texts(got), ['a', 'b', 'c', 'd', 'e']);
  t.is(got[0].stream, 'stdout');
  t.is(got[0].time, ts(T0));
  t.true(Buffer.isBuffer(got[0].log));
  t.is(got[0].log.toString(), 'a\n');
});

test('malformed lines are skipped, not fatal', async (t) => {
  const { log } = tmpLog(t);
  fs.writeFileSync(
    log,
    [
      line('stdout', 'one\n', ts(T0)),
      'not json at all\n',
      '{"log":"cut off in the mid\n',
      '\n',
      '[1,2,3]\n',
      'null\n',
      JSON.stringify({ log: 'no stream', time: ts(T0) }) + '\n',
      JSON.stringify({ log: 'bad stream', stream: 'stdin', time: ts(T0) }) + '\n',
      JSON.stringify({ log: 'no time', stream: 'stdout' }) + '\n',
      JSON.stringify({ log: 'bad time', stream: 'stdout', time: 'yesterday' }) + '\n',
      JSON.stringify({ log: 42, stream: 'stdout', time: ts(T0) }) + '\n',
      line('stderr', 'two\n', ts(T0 + 1)),
      // the last line has no newline: read when complete, as if the write just finished
      line('stdout', 'three\n', ts(T0 + 2)).trimEnd(),
    ].join(''),
  );
  t.deepEqual(texts(await collect(readLogs(log))), ['one', 'two', 'three']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 10 }))), ['one', 'two', 'three']);
});

test('partial-line entries (16 KiB pieces without a newline) come as written, bytes intact', async (t) => {
  const { log } = tmpLog(t);
  const piece = 'x'.repeat(16 * 1024);
  const tricky = 'é ✓ \u2028 <&> "q" \\ \t\r\u0001 end';
  fs.writeFileSync(
    log,
    line('stdout', piece, ts(T0)) + line('stdout', piece, ts(T0, 1)) + line('stdout', 'tail\n', ts(T0, 2)) + line('stderr', tricky + '\n', ts(T0, 3)),
  );
  const got = await collect(readLogs(log));
  t.is(got.length, 4);
  t.deepEqual(got[0].log, Buffer.from(piece));
  t.deepEqual(Buffer.concat(got.slice(0, 3).map((e) => e.log)), Buffer.from(piece + piece + 'tail\n'));
  t.deepEqual(got[3].log, Buffer.from(tricky + '\n', 'utf8'));
  t.is(got[3].stream, 'stderr');
});

test('stdout and stderr can be chosen; neither given means both', async (t) => {
  const { log } = tmpLog(t);
  fs.writeFileSync(log, line('stdout', 'o1\n', ts(T0)) + line('stderr', 'e1\n', ts(T0 + 1)) + line('stdout', 'o2\n', ts(T0 + 2)));
  t.deepEqual(texts(await collect(readLogs(log))), ['o1', 'e1', 'o2']);
  t.deepEqual(texts(await collect(readLogs(log, { stdout: true }))), ['o1', 'o2']);
  t.deepEqual(texts(await collect(readLogs(log, { stderr: true, stdout: false }))), ['e1']);
  t.deepEqual(texts(await collect(readLogs(log, { stdout: true, stderr: true }))), ['o1', 'e1', 'o2']);
  t.deepEqual(texts(await collect(readLogs(log, { stdout: false, stderr: false }))), []);
});

test('since and until (inclusive, fractional seconds) select a window across rotated files', async (t) => {
  const { log } = tmpLog(t);
  appendLines(`${log}.2`, ['a', 'b'], T0);
  appendLines(`${log}.1`, ['c', 'd'], T0 + 2);
  appendLines(log, ['e', 'f'], T0 + 4);
  t.deepEqual(texts(await collect(readLogs(log, { since: T0 + 3 }))), ['d', 'e', 'f']);
  t.deepEqual(texts(await collect(readLogs(log, { since: T0 + 2.5 }))), ['d', 'e', 'f']);
  t.deepEqual(texts(await collect(readLogs(log, { until: T0 + 1 }))), ['a', 'b']);
  t.deepEqual(texts(await collect(readLogs(log, { since: T0 + 1, until: T0 + 4 }))), ['b', 'c', 'd', 'e']);
  t.deepEqual(texts(await collect(readLogs(log, { since: T0 + 100 }))), []);
  // nanosecond times against a fractional bound
  fs.writeFileSync(log, line('stdout', 'early\n', ts(T0 + 10, 250_000_000)) + line('stdout', 'late\n', ts(T0 + 10, 750_000_000)));
  t.deepEqual(texts(await collect(readLogs(log, { since: T0 + 10.5 }))), ['late']);
  t.deepEqual(texts(await collect(readLogs(log, { until: T0 + 10.5 }))), ['a', 'b', 'c', 'd', 'early']);
});

test('tail counts entries from the end across rotated files', async (t) => {
  const { log } = tmpLog(t);
  appendLines(`${log}.2`, ['a', 'b'], T0);
  appendLines(`${log}.1`, ['c', 'd'], T0 + 2);
  appendLines(log, ['e'], T0 + 4);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 3 }))), ['c', 'd', 'e']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 4 }))), ['b', 'c', 'd', 'e']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 1 }))), ['e']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 0 }))), []);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 100 }))), ['a', 'b', 'c', 'd', 'e']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: -1 }))), ['a', 'b', 'c', 'd', 'e'], 'negative is all, like Docker');
});

test('tail counts only the entries that pass the stream and time filters', async (t) => {
  const { log } = tmpLog(t);
  fs.writeFileSync(`${log}.1`, line('stderr', 'e1\n', ts(T0)) + line('stdout', 'o1\n', ts(T0 + 1)));
  fs.writeFileSync(log, line('stderr', 'e2\n', ts(T0 + 2)) + line('stdout', 'o2\n', ts(T0 + 3)) + line('stdout', 'o3\n', ts(T0 + 4)));
  t.deepEqual(texts(await collect(readLogs(log, { tail: 2, stderr: true }))), ['e1', 'e2']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 2, until: T0 + 3 }))), ['e2', 'o2']);
  t.deepEqual(texts(await collect(readLogs(log, { tail: 5, since: T0 + 2 }))), ['e2', 'o2', 'o3']);
});

test('tail reads backwards correctly across chunk boundaries and long lines', async (t) => {
  const { log } = tmpLog(t);
  // Lengths chosen to put line ends everywhere relative to the 64 KiB read size,
  // including escaped 16 KiB pieces (~96 KiB on disk).
  const parts: string[] = [];
  let s = 7;
  for (let i = 0; i < 1500; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const len = i % 97 === 0 ? 16 * 1024 : s % 3000;
    const ch = i % 97 === 0 ? '\u0001' : String.fromCharCode(97 + (i % 26));
    parts.push(line(i % 3 ? 'stdout' : 'stderr', `${i}:` + ch.repeat(len) + '\n', ts(T0 + i)));
  }
  fs.writeFileSync(`${log}.1`, parts.slice(0, 700).join(''));
  fs.writeFileSync(log, parts.slice(700).join(''));
  const all = await collect(readLogs(log));
  t.is(all.length, 1500);
  const tailed = await collect(readLogs(log, { tail: 1500 }));
  t.deepEqual(tailed, all);
  t.deepEqual(await collect(readLogs(log, { tail: 1000 })), all.slice(500));
});

test.serial('tail of a few lines of a big log reads only its end', async (t) => {
  const { log } = tmpLog(t);
  const block = Array.from({ length: 1000 }, (_, i) => line('stdout', 'y'.repeat(400) + i + '\n', ts(T0))).join('');
  const fd = fs.openSync(log, 'w');
  for (let i = 0; i < 25; i++) fs.writeSync(fd, block); // ~10 MB
  fs.writeSync(fd, line('stdout', 'last\n', ts(T0 + 1)));
  fs.closeSync(fd);
  // Count the bytes read through FileHandle (serial: no other test reads meanwhile).
  const probe = await fs.promises.open(log, 'r');
  const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<{ bytesRead: number }> };
  await probe.close();
  const read = proto.read;
  let bytes = 0;
  proto.read = async function (this: unknown, ...a: unknown[]) {
    const r = await read.apply(this, a);
    bytes += r.bytesRead;
    return r;
  };
  try {
    const got = await collect(readLogs(log, { tail: 2 }));
    t.deepEqual(texts(got), ['y'.repeat(400) + 999, 'last']);
  } finally {
    proto.read = read;
  }
  t.true(bytes > 0 && bytes <= 128 * 1024, `read ${bytes} bytes`);
});

test('bad options throw INVALID_ARGUMENT at the call', (t) => {
  t.is(codeOf(() => readLogs('/nowhere', { tail: Number.NaN })), 'INVALID_ARGUMENT');
  t.is(codeOf(() => readLogs('/nowhere', { since: Infinity })), 'INVALID_ARGUMENT');
  t.is(codeOf(() => readLogs('/nowhere', { until: 'soon' as unknown as number })), 'INVALID_ARGUMENT');
});

// ---- following ----------------------------------------------------------------------

test('follow delivers appended lines, and ends on stop after every line written before it', async (t) => {
  const { log } = tmpLog(t);
  appendLines(log, ['a'], T0);
  const stop = deferred();
  t.teardown(stop.resolve);
  const it = readLogs(log, { follow: true, stop: stop.promise })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'a');
  appendLines(log, ['b'], T0 + 1);
  t.is(await nextText(it), 'b');
  // written right before stop: still delivered, once
  appendLines(log, ['c', 'd'], T0 + 2);
  stop.resolve();
  t.deepEqual(texts(await collect({ [Symbol.asyncIterator]: () => it })), ['c', 'd']);
});

test('follow puts a line written in two halves together once it is complete', async (t) => {
  const { log } = tmpLog(t);
  const stop = deferred();
  t.teardown(stop.resolve);
  appendLines(log, ['first'], T0);
  const it = readLogs(log, { follow: true, stop: stop.promise })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'first');
  const whole = line('stderr', 'split in two\n', ts(T0 + 1));
  fs.appendFileSync(log, whole.slice(0, 20));
  const pending = next(it);
  await followerAtEnd(log); // the follower has read the half line and waits for the rest
  fs.appendFileSync(log, whole.slice(20));
  const r = await pending;
  t.false(r.done);
  t.is(r.value?.log.toString(), 'split in two\n');
  t.is(r.value?.stream, 'stderr');
  stop.resolve();
  t.deepEqual(await collect({ [Symbol.asyncIterator]: () => it }), []);
});

test('follow survives a rotation mid-follow: no line lost or duplicated', async (t) => {
  const { log } = tmpLog(t);
  appendLines(log, ['a', 'b'], T0);
  const stop = deferred();
  t.teardown(stop.resolve);
  const it = readLogs(log, { follow: true, stop: stop.promise })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'a');
  t.is(await nextText(it), 'b');
  const c = next(it);
  await followerAtEnd(log); // the follower has read all of it and waits
  appendLines(log, ['c'], T0 + 2); // the old file's last line, not yet read
  rotate(log, 5);
  appendLines(log, ['d'], T0 + 3);
  t.is((await c).value?.log.toString(), 'c\n');
  t.is(await nextText(it), 'd');
  appendLines(log, ['e'], T0 + 4);
  t.is(await nextText(it), 'e');
  appendLines(log, ['f'], T0 + 5);
  rotate(log, 5);
  appendLines(log, ['g'], T0 + 6);
  stop.resolve();
  t.deepEqual(texts(await collect({ [Symbol.asyncIterator]: () => it })), ['f', 'g']);
  t.deepEqual(texts(await collect(readLogs(log))), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
});

test('follow survives two rotations between two looks, even when its file dropped off the end', async (t) => {
  for (const maxFiles of [5, 2]) {
    const { log } = tmpLog(t);
    appendLines(log, ['a'], T0);
    const stop = deferred();
    t.teardown(stop.resolve);
    const it = readLogs(log, { follow: true, stop: stop.promise })[Symbol.asyncIterator]();
    t.is(await nextText(it), 'a');
    const x = next(it);
    await followerAtEnd(log); // waiting
    // All synchronous: the follower cannot look in between.
    appendLines(log, ['x'], T0 + 1);
    rotate(log, maxFiles);
    appendLines(log, ['y'], T0 + 2);
    rotate(log, maxFiles); // with 2 files, the one the follower holds is gone from the directory
    appendLines(log, ['z'], T0 + 3);
    t.is((await x).value?.log.toString(), 'x\n', `maxFiles ${maxFiles}`);
    t.is(await nextText(it), 'y');
    t.is(await nextText(it), 'z');
    stop.resolve();
    t.deepEqual(await collect({ [Symbol.asyncIterator]: () => it }), []);
  }
});

test('follow with tail: the last entries, then what is appended', async (t) => {
  const { log } = tmpLog(t);
  appendLines(`${log}.1`, ['a', 'b'], T0);
  appendLines(log, ['c'], T0 + 2);
  const half = line('stdout', 'd\n', ts(T0 + 3));
  fs.appendFileSync(log, half.slice(0, 10)); // being written right now
  const stop = deferred();
  t.teardown(stop.resolve);
  const it = readLogs(log, { follow: true, tail: 2, stop: stop.promise })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'b');
  t.is(await nextText(it), 'c');
  fs.appendFileSync(log, half.slice(10));
  t.is(await nextText(it), 'd');
  appendLines(log, ['e'], T0 + 4);
  stop.resolve();
  t.deepEqual(texts(await collect({ [Symbol.asyncIterator]: () => it })), ['e']);
});

test('follow with tail 0 gives only new entries', async (t) => {
  const { log } = tmpLog(t);
  appendLines(log, ['old'], T0);
  const stop = deferred();
  t.teardown(stop.resolve);
  const it = readLogs(log, { follow: true, tail: 0, stop: stop.promise })[Symbol.asyncIterator]();
  const first = next(it);
  await followerAtEnd(log); // it has taken its (empty) tail and waits at the end: 'old' is behind it
  appendLines(log, ['new 1', 'new 2'], T0 + 1);
  t.is((await first).value?.log.toString(), 'new 1\n');
  stop.resolve();
  t.deepEqual(texts(await collect({ [Symbol.asyncIterator]: () => it })), ['new 2'], 'every line after the first, in order; never old');
});

test('follow waits for a log file that does not exist yet', async (t) => {
  const { log } = tmpLog(t);
  const stop = deferred();
  t.teardown(stop.resolve);
  const it = readLogs(log, { follow: true, stop: stop.promise })[Symbol.asyncIterator]();
  const first = next(it);
  await followerMissed(log); // it has looked, found no file, and waits for one
  appendLines(log, ['hello'], T0);
  t.is((await first).value?.log.toString(), 'hello\n');
  stop.resolve();
  t.deepEqual(await collect({ [Symbol.asyncIterator]: () => it }), []);
});

test('follow of a missing file ends on stop with nothing', async (t) => {
  const { log } = tmpLog(t);
  const stop = deferred();
  t.teardown(stop.resolve);
  const done = collect(readLogs(log, { follow: true, stop: stop.promise }));
  await followerMissed(log); // following, not yet started
  stop.resolve();
  t.deepEqual(await done, []);
});

test('follow ends quietly when the signal aborts', async (t) => {
  const { log } = tmpLog(t);
  appendLines(log, ['a'], T0);
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  const it = readLogs(log, { follow: true, signal: ac.signal })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'a');
  const pending = next(it);
  await followerAtEnd(log); // waiting for more when the abort comes
  ac.abort();
  t.true((await pending).done);
});

test('follow ends when the clock passes until', async (t) => {
  const { log } = tmpLog(t);
  const now = Date.now() / 1000;
  appendLines(log, ['before'], now - 1);
  appendLines(log, ['within'], now);
  // Both written before the reader starts: on a loaded machine it may take longer than the
  // 3 s to `until` to get going, and a line appended after that point is rightly not read.
  const it = readLogs(log, { follow: true, until: now + 3 })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'before');
  t.is(await nextText(it), 'within');
  t.true((await next(it, 60_000)).done, 'the follow ended once the clock passed until');
});

test('follow stops at an entry past until', async (t) => {
  const { log } = tmpLog(t);
  const now = Date.now() / 1000;
  appendLines(log, ['a', 'b'], now - 10);
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  const it = readLogs(log, { follow: true, until: now + 60, signal: ac.signal })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'a');
  t.is(await nextText(it), 'b');
  appendLines(log, ['late', 'later'], now + 61);
  t.true((await next(it)).done);
});

test('follow starts again at the top of a log truncated in place (one-file rotation)', async (t) => {
  const { log } = tmpLog(t);
  appendLines(log, ['a long first line', 'a long second line'], T0);
  const stop = deferred();
  t.teardown(stop.resolve);
  const it = readLogs(log, { follow: true, stop: stop.promise })[Symbol.asyncIterator]();
  t.is(await nextText(it), 'a long first line');
  t.is(await nextText(it), 'a long second line');
  const c = next(it);
  await followerAtEnd(log); // waiting at the end of the long lines
  fs.writeFileSync(log, line('stdout', 'c\n', ts(T0 + 5))); // O_TRUNC, same inode
  t.is((await c).value?.log.toString(), 'c\n');
  stop.resolve();
  t.deepEqual(await collect({ [Symbol.asyncIterator]: () => it }), []);
});

test.serial('breaking out of a follow closes its files', async (t) => {
  const { dir, log } = tmpLog(t);
  appendLines(log, ['a', 'b'], T0);
  const openInDir = (): number =>
    fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
      } catch {
        return false;
      }
    }).length;
  for await (const e of readLogs(log, { follow: true })) {
    t.is(e.log.toString(), 'a\n');
    t.is(openInDir(), 1);
    break;
  }
  t.is(openInDir(), 0);
});
