import { parentPort } from 'node:worker_threads';
import * as bodies from './schemas/bodies';
import * as createBodies from './schemas/create-body';
import type { BodySpec } from './schemas/common';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { validate } from './validate';
import { DepthScan, scanRefusal } from './depth-scan';
import { LIMITS } from './limits';

/**
 * The worker side of json-pool.ts: parses a large JSON body and checks it against its
 * schema off the daemon's event loop. It answers with the refusal (a message and a hint),
 * or with the body's text made compact for the daemon to parse (and smaller, where the body's
 * spec says what the handler never reads): a body that reaches the daemon's thread has
 * passed its nesting and value bounds (scanned here again in whole: the daemon scans only
 * the head of a body of known length) and its schema. The body's bytes come transferred,
 * not copied.
 */

const SPECS = new Map<string, BodySpec>();
for (const v of [...Object.values(bodies), ...Object.values(createBodies)]) {
  if (v && typeof v === 'object' && 'schema' in v && 'what' in v) SPECS.set((v as BodySpec).what, v as BodySpec);
}

export interface ParseJob {
  id: number;
  what: string;
  text: Uint8Array;
}

export type ParseAnswer = { id: number; ok: true; empty: boolean; text?: string } | { id: number; ok: false; message: string; hint: string };

parentPort?.on('message', (job: ParseJob) => {
  parentPort!.postMessage(answer(job));
});

function answer(job: ParseJob): ParseAnswer {
  const spec = SPECS.get(job.what);
  if (!spec) return { id: job.id, ok: false, message: `no schema for ${job.what}`, hint: 'report this to berth' };
  const bytes = Buffer.from(job.text.buffer, job.text.byteOffset, job.text.byteLength);
  // The daemon scanned only the head of a body whose length it knew: the nesting and the
  // values are bounded here, before JSON.parse, with the same refusals.
  const scan = new DepthScan(LIMITS.jsonDepth);
  if (!scan.feed(bytes)) {
    const e = scanRefusal(scan);
    return { id: job.id, ok: false, message: e.message, hint: e.hint ?? '' };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { id: job.id, ok: false, message: `${spec.what} is not valid JSON`, hint: 'send a JSON object' };
  }
  if (parsed === null) return { id: job.id, ok: true, empty: true };
  try {
    validate(spec.schema, parsed, spec.what, spec.hints);
  } catch (e) {
    if (e instanceof InvalidArgumentError) return { id: job.id, ok: false, message: e.message, hint: e.hint ?? '' };
    throw e;
  }
  return { id: job.id, ok: true, empty: false, text: JSON.stringify(spec.compact ? spec.compact(parsed) : parsed) };
}
