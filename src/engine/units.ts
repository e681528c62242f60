import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Docker's size strings (go-units RAMInBytes): a number with an optional unit b, k, m, g,
 * t, p (case-insensitive, an optional trailing 'b' or 'ib'), powers of 1024: '10m' is
 * 10485760. Used for the json-file log's max-size.
 */
export function parseSize(s: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(s);
  if (!m) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}`, { hint: 'give a size such as 512k, 10m or 1g' });
  }
  const mult = 1024 ** ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.floor(Number(m[1]) * mult);
}
