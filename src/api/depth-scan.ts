import { InvalidArgumentError } from '../../volumes/shared/errors';
import { LIMITS } from './limits';

/** The refusal for a body the scan stopped at: too many values, or nested too deep. */
export function scanRefusal(scan: DepthScan): InvalidArgumentError {
  if (scan.values > LIMITS.jsonValues) {
    return new InvalidArgumentError(`request body holds more than ${LIMITS.jsonValues} JSON values`, { hint: "Docker's API bodies hold at most a few hundred thousand values (a port range); send the body the API describes" });
  }
  return new InvalidArgumentError(`request body nests deeper than ${LIMITS.jsonDepth} levels`, { hint: "Docker's API bodies nest a few levels; send the body the API describes" });
}

/**
 * Counts `{`/`[` nesting outside JSON strings, across chunks, and the values (openings and
 * commas, a close upper bound). False once deeper than `max` or past `maxValues` values.
 */
export class DepthScan {
  private depth = 0;
  values = 0;
  private inString = false;
  private escaped = false;
  constructor(
    private readonly max: number,
    private readonly maxValues: number = LIMITS.jsonValues,
  ) {}

  feed(b: Buffer): boolean {
    // Locals, not fields, in the loop: this runs over every byte of every JSON body.
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    const max = this.max;
    let values = this.values;
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) {
        values++;
        if (++depth > max) return false;
      } else if (c === 0x7d || c === 0x5d) depth--;
      else if (c === 0x2c) values++;
    }
    this.values = values;
    if (values > this.maxValues) return false;
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return true;
  }
}
