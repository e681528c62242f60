import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Docker's detach keys: `ctrl-p,ctrl-q` (the default), any comma-separated list of single
 * characters and `ctrl-X` (X one of a-z @ [ \ ] ^ _). A DetachWatcher passes input through
 * and reports when the whole sequence was typed; a partial match is held back and passed
 * on as soon as the sequence breaks, so ordinary typing is never eaten.
 */

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

export function parseDetachKeys(spec: string): Buffer {
  const hint = 'give a comma-separated list like ctrl-p,ctrl-q or ctrl-a,d (ctrl- with a-z, @, [, \\, ], ^ or _)';
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const k = part.trim();
    if (k.length === 1) {
      out.push(k.charCodeAt(0));
      continue;
    }
    const m = /^ctrl-(.)$/i.exec(k);
    if (!m) throw new InvalidArgumentError(`invalid detach keys ${JSON.stringify(spec)}: ${JSON.stringify(k)} is not a key`, { hint });
    const c = m[1].toLowerCase();
    if (c >= 'a' && c <= 'z') out.push(c.charCodeAt(0) - 96);
    else if ('@[\\]^_'.includes(c)) out.push('@[\\]^_'.indexOf(c) === 0 ? 0 : 27 + '[\\]^_'.indexOf(c));
    else throw new InvalidArgumentError(`invalid detach keys ${JSON.stringify(spec)}: ctrl-${c} is not a control key`, { hint });
  }
  if (out.length === 0) throw new InvalidArgumentError('empty detach keys', { hint });
  return Buffer.from(out);
}

export class DetachWatcher {
  private matched = 0;

  constructor(private readonly keys: Buffer) {}

  /** The bytes to pass on, and whether the sequence is now complete (what follows it is dropped). */
  feed(data: Buffer): { pass: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const b of data) {
      if (b === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      // The sequence broke: what was held back is ordinary input after all.
      for (let i = 0; i < this.matched; i++) out.push(this.keys[i]);
      this.matched = b === this.keys[0] ? 1 : 0;
      if (this.matched === 0) out.push(b);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}
