/**
 * Size checks while unpacking what a client sent: an image import or load, a volume
 * import, pulled layers, a build's context, a Dockerfile's ADD of a local tar and a PUT
 * into a container (docker cp). A 45 MB gzip can
 * hold 10 GB of zeros; without a check, unpacking it fills the host's disk, and every
 * other writer on it (containers, volumes, the daemon's own records) fails with it.
 *
 * Two checks, both failing the unpack before the host is full, so the caller discards
 * what it made as it does for any bad input and nothing is left behind:
 *   room    the filesystem being written keeps `minFree` bytes free. A size declared up
 *           front (a tar header, a Content-Length) is checked before a byte of it is
 *           written (`declare`); the bytes as they stream are checked every CHECK_EVERY
 *           bytes against statfs (so sparse files, compression and other writers all
 *           count as the disk sees them);
 *   ratio   optional (daemon option --max-decompression-ratio): the output may be at most
 *           `maxRatio` times the compressed input, once past RATIO_GRACE bytes.
 *
 *   const guard = new UnpackGuard({ dir: upper, what: 'the layer', compressedBytes: () => n });
 *   pipeline(input, createGunzip(), guard, extract);   // fails with FAILED_PRECONDITION
 *   guard.declare(header.size);                         // or INVALID_ARGUMENT (ratio)
 */
import * as fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { FailedPreconditionError, InvalidArgumentError } from './errors';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** How many output bytes pass between two statfs calls. */
export const CHECK_EVERY = 8 * MiB;
/** The ratio is not judged before this much output: tar headers alone compress 100:1. */
export const RATIO_GRACE = 16 * MiB;

export interface UnpackLimits {
  /** Refuse to expand past this many output bytes per compressed byte (undefined: no cap). */
  maxRatio?: number;
  /** Keep this many bytes free on the filesystem written; default: 1% of it, 64 MiB to 1 GiB. */
  minFree?: number;
}

let configured: UnpackLimits = {};

/** The daemon's limits for every unpack (set once at start-up from its options). */
export function configureUnpackLimits(l: UnpackLimits): void {
  if (l.maxRatio !== undefined && !(Number.isFinite(l.maxRatio) && l.maxRatio >= 1)) {
    throw new InvalidArgumentError(`a decompression ratio of ${l.maxRatio} is not a number of at least 1`, { hint: 'give e.g. --max-decompression-ratio 100' });
  }
  if (l.minFree !== undefined && !(Number.isSafeInteger(l.minFree) && l.minFree >= 0)) {
    throw new InvalidArgumentError(`a minimum free space of ${l.minFree} bytes is not valid`, { hint: 'give a size in bytes (or with a unit: 512m, 2g)' });
  }
  configured = { ...l };
}

export function unpackLimits(): UnpackLimits {
  return { ...configured };
}

/** What the filesystem of `dir` has: its size and what an unprivileged writer may still use. */
export function spaceOf(dir: string): { size: number; free: number } {
  const st = fs.statfsSync(dir);
  return { size: st.blocks * st.bsize, free: st.bavail * st.bsize };
}

/** The free space to keep on a filesystem of `size` bytes: the configured one, else 1% within 64 MiB..1 GiB. */
export function reserveFor(size: number, limits: UnpackLimits = configured): number {
  return limits.minFree ?? Math.min(Math.max(size * 0.01, 64 * MiB), GiB);
}

/** The error of an unpack that would fill the host: names the filesystem and what to do. */
export function noRoom(dir: string, what: string, detail: string): FailedPreconditionError {
  return new FailedPreconditionError(`not enough space to unpack ${what}: ${detail} on the filesystem of ${dir}`, {
    hint: 'free space on the host (berth system prune, remove volumes or images), or send a smaller archive',
  });
}

/**
 * Refuse up front a write of `bytes` to the filesystem of `dir` that would leave less than
 * its reserve free (a declared size: a tar entry, a blob's Content-Length).
 */
export function checkRoom(dir: string, bytes: number, what: string, limits: UnpackLimits = configured): void {
  const { size, free } = spaceOf(dir);
  const keep = reserveFor(size, limits);
  if (bytes > free - keep) throw noRoom(dir, what, `it needs ${bytes} bytes, ${Math.max(free - keep, 0)} are available`);
}

export interface GuardOptions {
  /** A directory on the filesystem the unpacked bytes go to. */
  dir: string;
  /** What is unpacked, for messages ('the layer', 'the archive'). */
  what: string;
  /** Compressed bytes read so far (for the ratio); without it no ratio is checked. */
  compressedBytes?: () => number;
  limits?: UnpackLimits;
}

/** A pass-through that fails the pipeline when the output would fill the host or expands past the ratio. */
export class UnpackGuard extends Transform {
  private out = 0;
  private nextCheck = 0;
  private readonly limits: UnpackLimits;

  constructor(private readonly opts: GuardOptions) {
    super();
    this.limits = opts.limits ?? unpackLimits();
  }

  /** Output bytes so far. */
  get bytes(): number {
    return this.out;
  }

  /** Check a size declared ahead of its bytes (throws the same errors as the stream). */
  declare(bytes: number): void {
    checkRoom(this.opts.dir, bytes, this.opts.what, this.limits);
    this.ratio(this.out + bytes);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.out += chunk.length;
    try {
      this.ratio(this.out);
      if (this.out >= this.nextCheck) {
        this.nextCheck = this.out + CHECK_EVERY;
        // What the next CHECK_EVERY bytes may need, before they come.
        checkRoom(this.opts.dir, CHECK_EVERY, this.opts.what, this.limits);
      }
    } catch (e) {
      return cb(e as Error);
    }
    cb(null, chunk);
  }

  private ratio(out: number): void {
    const max = this.limits.maxRatio;
    const inBytes = this.opts.compressedBytes?.();
    if (max === undefined || inBytes === undefined || out <= RATIO_GRACE) return;
    if (out > Math.max(inBytes, 1) * max) {
      throw new InvalidArgumentError(`${this.opts.what} expands more than ${max} times (${out} bytes from ${inBytes} compressed): refused as a decompression bomb`, {
        hint: 'send it uncompressed or split, or raise the daemon option --max-decompression-ratio',
      });
    }
  }
}
