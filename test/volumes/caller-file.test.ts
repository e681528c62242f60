import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { callerFileOf, callerFileQuery, openCallerFile, type CallerFile } from '../../volumes/shared/caller-file';
import { tarTree } from '../../volumes/archive/tar-tree';

/** An empty file this process opened, named as the CLI names it to berthd. */
function opened(t: { teardown(fn: () => void): void }, name = 'out.tar'): { file: string; to: CallerFile } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-caller-file-'));
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'wx');
  t.teardown(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const st = fs.fstatSync(fd, { bigint: true });
  return { file, to: { pid: process.pid, fd, dev: String(st.dev), ino: String(st.ino) } };
}

async function bytesOf(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test("tar written into the caller's file is the same bytes as the streamed tar", async (t) => {
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-caller-src-'));
  t.teardown(() => fs.rmSync(src, { recursive: true, force: true }));
  fs.mkdirSync(path.join(src, 'd'));
  fs.writeFileSync(path.join(src, 'd', 'f'), 'data');
  fs.linkSync(path.join(src, 'd', 'f'), path.join(src, 'h'));
  fs.symlinkSync('d/f', path.join(src, 's'));
  const { file, to } = opened(t);
  const fd = openCallerFile(to);
  try {
    t.is((await bytesOf(tarTree(src, { fd }))).length, 0, 'the stream carries nothing');
  } finally {
    fs.closeSync(fd);
  }
  t.deepEqual(fs.readFileSync(file), await bytesOf(tarTree(src)));
});

test("a caller file that is not the one named, or not empty, is refused and left alone", (t) => {
  const { file, to } = opened(t);
  t.throws(() => openCallerFile({ ...to, ino: String(BigInt(to.ino) + 1n) }), { code: 'FAILED_PRECONDITION' });
  t.throws(() => openCallerFile({ ...to, fd: 999_999 }), { code: 'FAILED_PRECONDITION' });
  fs.writeFileSync(file, 'precious');
  t.throws(() => openCallerFile(to), { code: 'FAILED_PRECONDITION' });
  t.is(fs.readFileSync(file, 'utf8'), 'precious');
});

test('the query names the file with all four numbers or not at all', (t) => {
  const { to } = opened(t);
  t.deepEqual(callerFileOf(new URLSearchParams(callerFileQuery(to))), to);
  t.is(callerFileOf(new URLSearchParams('snapshot=s1')), undefined);
  t.throws(() => callerFileOf(new URLSearchParams({ pid: '1', fd: '3' })), { code: 'INVALID_ARGUMENT' });
  t.throws(() => callerFileOf(new URLSearchParams({ pid: '1', fd: '3', dev: 'x', ino: '4' })), { code: 'INVALID_ARGUMENT' });
});
