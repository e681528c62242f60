import { formatItems } from '../../format';
import type { OutputChunk } from '../../../engine/service';

/** Output helpers the container verbs share. */

/** A container's output to ours: stdout to stdout, stderr to stderr, with backpressure. */
export async function pumpOutput(out: AsyncIterable<OutputChunk>): Promise<void> {
  for await (const c of out) {
    const dest = c.stream === 'stderr' ? process.stderr : process.stdout;
    if (!dest.write(c.data)) await new Promise((r) => dest.once('drain', r));
  }
}

/** Like docker: act on every argument, report each failure, fail at the end. */
export async function eachRef(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed: unknown;
  for (const r of refs) {
    try {
      await fn(r);
    } catch (e) {
      failed = e;
      process.stderr.write(`berth: ${(e as Error).message}\n`);
    }
  }
  if (failed) throw failed;
}

/** `inspect` output: indented JSON, or each object through a --format template. */
export function printInspect(out: object[], format?: string): void {
  if (format && format !== 'json') return void process.stdout.write(formatItems(format, out));
  process.stdout.write(JSON.stringify(out, null, 4) + '\n');
}
