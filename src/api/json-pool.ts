import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { LIMITS } from './limits';
import type { ParseAnswer, ParseJob } from './json-worker';

/**
 * A small pool of worker threads that parse and check large JSON bodies (json-worker.ts),
 * so that a burst of 4 MB bodies costs the daemon's event loop nothing but the reading:
 * `/_ping`, listings and streams keep being answered while the workers parse. Bounded
 * (LIMITS.parseWorkers threads, each with a capped heap), made on first use, reused, and
 * ended after a while idle so an idle daemon holds none. A body that kills its worker
 * (out of the worker's heap) is refused, and the worker replaced.
 */

interface Slot {
  worker: Worker;
  job?: { id: number; resolve: (a: ParseAnswer) => void; reject: (e: Error) => void };
  idle?: NodeJS.Timeout;
}

const IDLE_MS = 30_000;
const slots: Slot[] = [];
const waiting: Array<() => void> = [];
let nextId = 1;

/** Parse `body` (UTF-8 JSON) and check it against the schema named `what`, in a worker. Undefined for a `null` body. */
export async function parseInWorker(body: Buffer, what: string): Promise<unknown> {
  const slot = await take();
  let a: ParseAnswer;
  try {
    a = await run(slot, body, what);
  } finally {
    give(slot);
  }
  if (!a.ok) throw new InvalidArgumentError(a.message, { hint: a.hint });
  return a.empty ? undefined : parseHere(a.text!);
}

/**
 * The checked body's text is parsed again on the daemon's thread (handing the object over
 * by structured clone costs about three parses). One at a time, each after the loop has
 * turned once, so that however many bodies come back at once, pings and other requests are
 * answered between them: the longest the loop is held is one parse of one body, bounded by
 * the value cap and made small by its spec's compact().
 */
let parsing: Promise<unknown> = Promise.resolve();
function parseHere(text: string): Promise<unknown> {
  const turn = parsing.then(
    () => new Promise<unknown>((resolve, reject) => setImmediate(() => {
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(e as Error);
      }
    })),
  );
  parsing = turn.catch(() => undefined);
  return turn;
}

/** How many parse workers exist now (tests and the soak bench read it). */
export function parseWorkers(): number {
  return slots.length;
}

async function take(): Promise<Slot> {
  for (;;) {
    const free = slots.find((s) => !s.job);
    if (free) {
      if (free.idle) clearTimeout(free.idle);
      free.idle = undefined;
      free.job = { id: 0, resolve: () => {}, reject: () => {} };
      return free;
    }
    if (slots.length < LIMITS.parseWorkers) {
      const s = spawn();
      s.job = { id: 0, resolve: () => {}, reject: () => {} };
      return s;
    }
    await new Promise<void>((r) => waiting.push(r));
  }
}

function give(slot: Slot): void {
  slot.job = undefined;
  if (slots.includes(slot)) {
    slot.idle = setTimeout(() => retire(slot), IDLE_MS);
    slot.idle.unref();
  }
  waiting.shift()?.();
}

function run(slot: Slot, body: Buffer, what: string): Promise<ParseAnswer> {
  const id = nextId++;
  return new Promise<ParseAnswer>((resolve, reject) => {
    slot.job = { id, resolve, reject };
    const job: ParseJob = { id, what, text: body };
    // A buffer that owns its whole memory (readBody makes one for a large body) is moved to
    // the worker, not copied: 4 MB less to copy on the daemon's thread per body.
    const own = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer;
    slot.worker.postMessage(job, own ? [body.buffer as ArrayBuffer] : []);
  });
}

function spawn(): Slot {
  const worker = new Worker(path.join(__dirname, 'json-worker.js'), {
    resourceLimits: { maxOldGenerationSizeMb: LIMITS.parseWorkerHeapMiB, maxYoungGenerationSizeMb: 16 },
  });
  worker.unref();
  const slot: Slot = { worker };
  worker.on('message', (a: ParseAnswer) => {
    if (slot.job && slot.job.id === a.id) slot.job.resolve(a);
  });
  const gone = (why: string) => {
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    if (slot.idle) clearTimeout(slot.idle);
    slot.job?.reject(new InvalidArgumentError(`request body is too large to parse (${why})`, { hint: `API bodies are small: keep a JSON body under ${LIMITS.jsonBodyBytes >> 20} MiB with few values (pass bulk data in a volume or an image)` }));
    waiting.shift()?.();
  };
  worker.on('error', (e) => gone(e.message));
  worker.on('exit', (code) => gone(`its parser exited with ${code}`));
  slots.push(slot);
  return slot;
}

function retire(slot: Slot): void {
  if (slot.job) return;
  const i = slots.indexOf(slot);
  if (i >= 0) slots.splice(i, 1);
  void slot.worker.terminate();
}
