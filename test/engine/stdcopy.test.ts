import test from 'ava';
import { Readable } from 'node:stream';
import { Demuxer, STDERR, STDIN, STDOUT, SYSTEMERR, demux, frame } from '../../src/api/stdcopy';
import { sleep } from '../helpers/eventually';

function framed(): { bytes: Buffer; out: Buffer; err: Buffer } {
  const parts: [0 | 1 | 2, Buffer][] = [
    [STDOUT, Buffer.from('hello\n')],
    [STDERR, Buffer.from('oops\n')],
    [STDOUT, Buffer.alloc(0)], // an empty frame is legal
    [STDOUT, Buffer.from([0, 1, 2, 255, 0x0a])],
    [STDERR, Buffer.alloc(300, 'e')], // size bytes beyond the lowest
    [STDIN, Buffer.from('typed\n')], // goes to stdout, as in moby
  ];
  return {
    bytes: Buffer.concat(parts.map(([s, d]) => frame(s, d))),
    out: Buffer.concat(parts.filter(([s]) => s !== STDERR).map(([, d]) => d)),
    err: Buffer.concat(parts.filter(([s]) => s === STDERR).map(([, d]) => d)),
  };
}

test('frame writes the 8-byte header: stream, three zeros, big-endian length', (t) => {
  t.deepEqual(frame(STDERR, Buffer.from('hi')), Buffer.from([2, 0, 0, 0, 0, 0, 0, 2, 0x68, 0x69]));
  t.deepEqual(frame(STDOUT, Buffer.alloc(0x010203)).subarray(0, 8), Buffer.from([1, 0, 0, 0, 0, 1, 2, 3]));
  t.deepEqual([STDIN, STDOUT, STDERR, SYSTEMERR], [0, 1, 2, 3]);
});

test('round trip with the stream split at every byte boundary, and byte by byte', async (t) => {
  const { bytes, out, err } = framed();
  const cuts: number[][] = [];
  for (let i = 0; i <= bytes.length; i++) cuts.push([i]);
  cuts.push(Array.from({ length: bytes.length }, (_, i) => i)); // one byte per write
  for (const at of cuts) {
    const o: Buffer[] = [];
    const e: Buffer[] = [];
    const frames: number[] = [];
    const chunks: Buffer[] = [];
    let prev = 0;
    for (const c of [...at, bytes.length]) {
      chunks.push(bytes.subarray(prev, c));
      prev = c;
    }
    await demux(Readable.from(chunks, { objectMode: false }), {
      stdout: (b) => {
        o.push(Buffer.from(b));
        frames.push(1);
      },
      stderr: (b) => {
        e.push(Buffer.from(b));
        frames.push(2);
      },
    });
    t.deepEqual(Buffer.concat(o), out, `cut at ${at.length > 1 ? 'every byte' : at[0]}`);
    t.deepEqual(Buffer.concat(e), err);
    t.deepEqual(frames, [1, 2, 1, 1, 2, 1], 'one callback per frame');
  }
});

test('a handler returning a promise holds the next frame until it settles', async (t) => {
  const order: string[] = [];
  await demux(Readable.from([Buffer.concat([frame(STDOUT, Buffer.from('a')), frame(STDERR, Buffer.from('b'))])]), {
    stdout: async (b) => {
      await sleep(20); // pacing: a slow handler; the order holds however long it takes
      order.push(`out ${b}`);
    },
    stderr: (b) => void order.push(`err ${b}`),
  });
  t.deepEqual(order, ['out a', 'err b']);
});

test('a SYSTEMERR frame fails the stream with INTERNAL', async (t) => {
  const src = Readable.from([Buffer.concat([frame(STDOUT, Buffer.from('a')), frame(SYSTEMERR as 1, Buffer.from('disk on fire'))])]);
  const e = await t.throwsAsync(demux(src, {}));
  t.is((e as { code?: string }).code, 'INTERNAL');
});

test('an unknown stream byte or a stream cut inside a frame fails with INVALID_ARGUMENT', async (t) => {
  const tty = await t.throwsAsync(demux(Readable.from([Buffer.from('raw tty output!!')]), {}));
  t.is((tty as { code?: string }).code, 'INVALID_ARGUMENT');
  const cut = frame(STDOUT, Buffer.from('hello')).subarray(0, 10);
  const e = await t.throwsAsync(demux(Readable.from([cut]), {}));
  t.is((e as { code?: string }).code, 'INVALID_ARGUMENT');
});

test('Demuxer is a Writable that can be written to directly', async (t) => {
  const got: string[] = [];
  const d = new Demuxer({ stdout: (b) => void got.push(b.toString()) });
  const f = frame(STDOUT, Buffer.from('direct'));
  d.write(f.subarray(0, 3));
  d.write(f.subarray(3));
  await new Promise<void>((resolve, reject) => d.end(() => resolve()).on('error', reject));
  t.deepEqual(got, ['direct']);
});
