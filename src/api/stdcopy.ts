/**
 * Docker's multiplexed stream format (moby's pkg/stdcopy), used for the output of a
 * container without a tty on `attach`, `logs` and `exec`: stdout and stderr share one
 * connection as frames, each an 8-byte header then the payload:
 *
 *   [stream, 0, 0, 0, size>>24, size>>16, size>>8, size] payload (size bytes)
 *
 * stream is STDIN (0, written out as stdout, as moby does), STDOUT (1), STDERR (2) or
 * SYSTEMERR (3: the daemon reports an error in the middle of the stream; the payload
 * is its message). A tty container's output is raw bytes, never framed.
 *
 * Example
 *   res.write(frame(STDOUT, Buffer.from('hi\n')));
 *   await demux(res, { stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b) });
 */
import { Writable, type WritableOptions, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InternalError, InvalidArgumentError } from '../../volumes/shared/errors';

export const STDIN = 0, STDOUT = 1, STDERR = 2, SYSTEMERR = 3;
export type StreamType = typeof STDIN | typeof STDOUT | typeof STDERR | typeof SYSTEMERR;

export const HEADER_SIZE = 8;
const MAX_FRAME = 0xffffffff;

/** One frame: the 8-byte header, then `data`. */
export function frame(stream: StreamType, data: Buffer): Buffer {
  if (data.length > MAX_FRAME) {
    throw new InvalidArgumentError(`a frame holds at most ${MAX_FRAME} bytes, not ${data.length}`, {
      hint: 'write the data as several frames',
    });
  }
  const out = Buffer.allocUnsafe(HEADER_SIZE + data.length);
  out[0] = stream;
  out[1] = out[2] = out[3] = 0;
  out.writeUInt32BE(data.length, 4);
  data.copy(out, HEADER_SIZE);
  return out;
}

/** Where a Demuxer hands each frame's payload. A returned promise holds the next frame
 *  (and so the writer, through the Writable's backpressure) until it settles. */
export interface DemuxHandlers {
  stdout?: (data: Buffer) => void | Promise<void>;
  stderr?: (data: Buffer) => void | Promise<void>;
}

/**
 * A Writable that takes a framed stream, in chunks cut anywhere, and calls `stdout` or
 * `stderr` once per whole frame (STDIN frames go to `stdout`). It fails (the 'error'
 * event, or the rejection of `demux`) with InternalError on a SYSTEMERR frame (the
 * daemon's message), and with InvalidArgumentError on an unknown stream byte or a
 * stream that ends inside a frame.
 */
export class Demuxer extends Writable {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly handlers: DemuxHandlers,
    opts: WritableOptions = {},
  ) {
    super(opts);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    this.drain().then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.buffered === 0) return cb();
    cb(new InvalidArgumentError(`the multiplexed stream ended inside a frame (${this.buffered} bytes left over)`));
  }

  /** Hand on every whole frame buffered. */
  private async drain(): Promise<void> {
    while (this.buffered >= HEADER_SIZE) {
      const header = this.peek(HEADER_SIZE);
      const stream = header[0];
      if (stream > SYSTEMERR) {
        throw new InvalidArgumentError(`unknown stream ${stream} in a multiplexed stream`, {
          hint: 'is the container attached with a tty? Its output is then raw, not framed',
        });
      }
      const size = header.readUInt32BE(4);
      if (this.buffered < HEADER_SIZE + size) return;
      const data = this.take(HEADER_SIZE + size).subarray(HEADER_SIZE);
      if (stream === SYSTEMERR) throw new InternalError(`error from daemon in stream: ${data.toString('utf8')}`);
      const handler = stream === STDERR ? this.handlers.stderr : this.handlers.stdout;
      const r = handler?.(data);
      if (r) await r;
    }
  }

  /** The first n buffered bytes, without consuming them (n <= buffered). */
  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    for (const c of this.chunks) {
      got += c.copy(out, got, 0, Math.min(c.length, n - got));
      if (got === n) break;
    }
    return out;
  }

  /** Consume the first n buffered bytes (n <= buffered); copies only when they span chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** Read a framed stream to its end, handing each frame to `handlers`. */
export async function demux(src: Readable, handlers: DemuxHandlers): Promise<void> {
  await pipeline(src, new Demuxer(handlers));
}
