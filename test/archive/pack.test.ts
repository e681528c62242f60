/**
 * packDir: round trip through applyLayer, overlay whiteouts to `.wh.` entries and back,
 * determinism (same tree, same digest), and what is skipped.
 */
import test from 'ava';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { applyLayer } from '../../volumes/archive/apply';
import { packDir, streamPack } from '../../volumes/archive/pack';
import { eventually } from '../helpers/eventually';
import { describeTree, fixture, type Fixture } from './helpers';
import { sha256 } from '../helpers/digest';
import { collect } from '../helpers/tar';
import { stdoutOf } from '../helpers/proc';

const WEIRD = 'we ird\n\\dir'; // exercises getfattr/setfattr name quoting

/** A tree with every kind packDir keeps, plus overlay whiteouts and opaque dirs. */
async function makeTree(fx: Fixture): Promise<string> {
  const src = path.join(fx.tmp, 'src');
  const p = (r: string) => path.join(src, r);
  await fsp.mkdir(p('d/sub'), { recursive: true });
  await fsp.mkdir(p('opq'));
  await fsp.mkdir(p(WEIRD));
  await fsp.writeFile(p('d/f'), 'hello');
  await fsp.writeFile(p('d/empty'), '');
  await fsp.writeFile(p('big'), Buffer.alloc(300_000, 9));
  await fsp.link(p('d/f'), p('d/sub/hard'));
  await fsp.symlink('../d/f', p('opq/rel'));
  await fsp.symlink('/nowhere', p('dangling'));
  await fsp.writeFile(p('opq/x'), 'x');
  await fsp.writeFile(p('suid'), '#!/bin/sh\n');
  stdoutOf('mknod', [p('fifo'), 'p']);
  stdoutOf('mknod', [p('gone'), 'c', '0', '0']);
  stdoutOf('mknod', [p('d/sub/gone2'), 'c', '0', '0']);
  stdoutOf('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p('opq')]);
  stdoutOf('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p(WEIRD)]);
  await fsp.chmod(p('suid'), 0o4755);
  await fsp.chmod(p('d'), 0o1777);
  await fsp.chmod(p('d/empty'), 0);
  await fsp.chmod(p('gone'), 0); // overlayfs makes whiteouts mode 000, as apply does
  await fsp.chmod(p('d/sub/gone2'), 0);
  await fsp.lchown(p('suid'), 1234, 5678);
  await fsp.lchown(p('opq/rel'), 42, 43);
  await fsp.lchown(p('d/sub'), 300_000, 300_001); // beyond ustar's 6 octal digits: pax
  await fsp.chmod(p('suid'), 0o4755);
  let i = 0;
  for (const r of ['d/f', 'd/empty', 'big', 'opq/rel', 'fifo', 'gone', 'd/sub/gone2', 'd/sub', 'd', 'opq', WEIRD, 'suid']) {
    const t = new Date((1_600_000_000 + i++ * 1000) * 1000);
    await fsp.lutimes(p(r), t, t);
  }
  return src;
}

async function entriesOf(buf: Buffer): Promise<tar.Header[]> {
  const out: tar.Header[] = [];
  const ex = tar.extract();
  const done = (async () => {
    for await (const e of ex) {
      out.push(e.header);
      e.resume();
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

test('apply(packDir(x)) gives back the same tree, whiteouts and opaque dirs included', async (t) => {
  const fx = await fixture(t);
  const src = await makeTree(fx);
  const r = await applyLayer(packDir(src, { overlayWhiteouts: true }), fx.layer);
  t.deepEqual(await describeTree(fx.layer), await describeTree(src));
  t.is(r.devicesDropped, 0);
});

test('packDir writes overlay whiteouts as .wh. entries, sorted, without ./', async (t) => {
  const fx = await fixture(t);
  const src = await makeTree(fx);
  // overlayfs (>= 5.8) makes whiteouts as links of one shared inode: still plain .wh. files
  await fsp.link(path.join(src, 'gone'), path.join(src, 'gone-too'));
  const headers = await entriesOf(await collect(packDir(src, { overlayWhiteouts: true })));
  t.is(headers.find((h) => h.name === '.wh.gone-too')?.type, 'file');
  const names = headers.map((h) => h.name);
  t.true(names.includes('.wh.gone'));
  t.true(names.includes('d/sub/.wh.gone2'));
  t.true(names.includes('opq/.wh..wh..opq'));
  t.true(names.includes(`${WEIRD}/.wh..wh..opq`));
  t.false(names.some((n) => n.startsWith('./') || n.startsWith('/')));
  t.false(headers.some((h) => h.type === 'character-device'));
  t.deepEqual(names.filter((n) => !n.includes('/')), [...names.filter((n) => !n.includes('/'))].sort());
  const hard = headers.find((h) => h.name === 'd/sub/hard');
  t.deepEqual([hard?.type, hard?.linkname], ['link', 'd/f']);
});

test('without overlayWhiteouts, device nodes and opaque markers are left out', async (t) => {
  const fx = await fixture(t);
  const src = await makeTree(fx);
  const names = (await entriesOf(await collect(packDir(src)))).map((h) => h.name);
  t.false(names.some((n) => n.includes('.wh.') || n.endsWith('gone') || n.endsWith('gone2')));
  t.true(names.includes('fifo'));
});

test('packDir is deterministic: two runs, same digest', async (t) => {
  const fx = await fixture(t);
  const src = await makeTree(fx);
  const a = await collect(packDir(src, { overlayWhiteouts: true }));
  const b = await collect(packDir(src, { overlayWhiteouts: true }));
  t.is(sha256(a), sha256(b));
  const r = await applyLayer(Readable.from([a]), fx.layer);
  t.is(r.diffID, 'sha256:' + sha256(a));
});

test('packDir of a missing directory errors the stream', async (t) => {
  const fx = await fixture(t);
  await t.throwsAsync(collect(packDir(path.join(fx.tmp, 'nope'))), { code: 'NOT_FOUND' });
});

test('a reader that stops early ends the walk quietly', async (t) => {
  const fx = await fixture(t);
  const src = await makeTree(fx);
  const s = packDir(src);
  const errors: Error[] = [];
  s.on('error', (e) => errors.push(e));
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  for await (const _ of s) break; // destroys the stream after the first chunk
  await closed;
  // Node reports the reader's own break as an AbortError; the walk must add nothing to it.
  t.deepEqual(
    errors.filter((e) => (e as NodeJS.ErrnoException).code !== 'ABORT_ERR'),
    [],
    'the walk ending is not reported as an error',
  );
});

test('a reader that stops early ends an endless walk', async (t) => {
  let entries = 0;
  let ended: unknown;
  const s = streamPack(async (pack, room) => {
    try {
      for (;;) {
        await room();
        pack.entry({ name: `f${entries++}` }, Buffer.alloc(4096));
      }
    } catch (e) {
      ended = e;
      throw e;
    }
  });
  for await (const _ of s) break;
  await eventually(() => ended, { message: 'the walk to end once its reader stopped' });
  const at = entries;
  await eventually(() => s.destroyed, { message: 'the stream to be destroyed' });
  t.is(entries, at, 'no entry is written after the walk ended');
  t.true(at < 10_000, `the walk stopped soon (${at} entries), not at the end of anything`);
});
