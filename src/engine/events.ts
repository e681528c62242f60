/**
 * The daemon's event bus: what `GET /events` (`docker events`) serves.
 *
 * Services `emit` what happened (a container started, an image was pulled); the bus
 * stamps it in Docker's event shape, keeps the last 1024 in a ring, and hands it to
 * every subscriber whose filters match. A subscriber may ask for the past: with `since`
 * or `until` the ring is replayed first (moby does the same, so `--until` alone replays
 * the whole ring), then live events follow until `until` passes.
 *
 * Delivery is synchronous: `emit` calls each subscriber's `onEvent` before returning,
 * and `subscribe` delivers the replay before it returns, so there is no gap and no
 * duplicate between replay and live events. A slow HTTP client cannot stall the bus
 * since writing to a response only queues. A subscriber whose `onEvent` throws is ended.
 *
 * Example
 *   const off = bus.subscribe({ since: t, filters: { type: ['container'] } },
 *     (ev) => res.write(JSON.stringify(ev) + '\n'), () => res.end());
 *   req.on('close', off);
 */
import { InvalidArgumentError } from '../../volumes/shared/errors';

export type EventType = 'container' | 'image' | 'volume' | 'network' | 'daemon';

export interface EventActor {
  ID: string;
  Attributes: Record<string, string>;
}

export interface EventInput {
  Type: EventType;
  Action: string;
  Actor: EventActor;
}

/** Docker's events.Message. `status` and `id` are set for container and image events,
 *  `from` (the image) for container events only, as moby does. */
export interface DockerEvent {
  status?: string;
  id?: string;
  from?: string;
  Type: EventType;
  Action: string;
  Actor: EventActor;
  scope: 'local';
  /** Unix seconds. */
  time: number;
  /** Unix nanoseconds. The bus stamps whole microseconds, so this is us * 1000 (as a
   *  JS number, within 128 ns of that: doubles near 1.8e18 are 256 apart). */
  timeNano: number;
}

export interface SubscribeOptions {
  /** Unix seconds (fractional ok): replay ring events at or after this. */
  since?: number;
  /** Unix seconds (fractional ok): no events after this; the subscription ends then. */
  until?: number;
  /** Docker's event filters: values of one key are ORed, keys are ANDed. Keys: type,
   *  event (alias action), container, image, volume, network, daemon, label, scope. */
  filters?: Record<string, string[]>;
}

export interface EventBusOptions {
  /** Events kept for replay (default 1024). */
  capacity?: number;
  /** Wall clock in ms (default Date.now); tests pass their own. */
  clock?: () => number;
}

const FILTER_KEYS = new Set(['type', 'event', 'action', 'container', 'image', 'volume', 'network', 'daemon', 'label', 'scope']);

interface Stamped {
  ev: DockerEvent;
  /** Unix microseconds, strictly increasing: exact in a double, unlike nanoseconds. */
  us: number;
}

interface Subscriber {
  match: (ev: DockerEvent) => boolean;
  untilUs?: number;
  onEvent: (ev: DockerEvent) => void;
  onEnd?: () => void;
  timer?: NodeJS.Timeout;
}

export class EventBus {
  private readonly ring: Stamped[] = [];
  private readonly capacity: number;
  private readonly clock: () => number;
  private readonly subs = new Set<Subscriber>();
  private lastUs = 0;
  private closed = false;

  constructor(opts: EventBusOptions = {}) {
    this.capacity = opts.capacity ?? 1024;
    this.clock = opts.clock ?? Date.now;
  }

  /** Stamp, record and deliver an event; returns it as delivered. */
  emit(e: EventInput): DockerEvent {
    // Microseconds, made strictly increasing, so `since` an event's time replays from
    // exactly that event (a double holds unix us exactly, and seconds to < 0.5 us).
    let us = Math.floor(this.clock() * 1000);
    if (us <= this.lastUs) us = this.lastUs + 1;
    this.lastUs = us;
    const Actor = { ID: e.Actor.ID, Attributes: { ...e.Actor.Attributes } };
    const ev: DockerEvent = {
      ...(e.Type === 'container' || e.Type === 'image' ? { status: e.Action, id: e.Actor.ID } : {}),
      ...(e.Type === 'container' && Actor.Attributes.image !== undefined ? { from: Actor.Attributes.image } : {}),
      Type: e.Type,
      Action: e.Action,
      Actor,
      scope: 'local',
      time: Math.floor(us / 1e6),
      timeNano: us * 1000,
    };
    this.ring.push({ ev, us });
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const s of [...this.subs]) {
      if (s.untilUs !== undefined && us > s.untilUs) this.end(s);
      else this.deliver(s, ev);
    }
    return ev;
  }

  /**
   * Replay (when `since` or `until` is given) then live events, each through `onEvent`.
   * Ends, calling `onEnd`, when `until` passes (at once after the replay if it already
   * has) or the bus closes. Returns an unsubscribe function (idempotent; it does not call
   * `onEnd`). Unknown filter keys or `since` after `until` throw InvalidArgumentError.
   */
  subscribe(opts: SubscribeOptions, onEvent: (ev: DockerEvent) => void, onEnd?: () => void): () => void {
    const sinceUs = toUs('since', opts.since);
    const untilUs = toUs('until', opts.until);
    if (sinceUs !== undefined && untilUs !== undefined && sinceUs > untilUs) {
      throw new InvalidArgumentError('since is after until', { hint: 'give a since time before the until time' });
    }
    const s: Subscriber = { match: eventFilter(opts.filters ?? {}), untilUs, onEvent, onEnd };
    const off = (): void => {
      if (s.timer) clearTimeout(s.timer);
      this.subs.delete(s);
    };
    this.subs.add(s);
    if (sinceUs !== undefined || untilUs !== undefined) {
      for (const { ev, us } of this.ring) {
        if (!this.subs.has(s)) return off; // onEvent threw
        if (sinceUs !== undefined && us < sinceUs) continue;
        if (untilUs !== undefined && us > untilUs) break;
        this.deliver(s, ev);
      }
    }
    if (!this.subs.has(s)) return off;
    if (this.closed) {
      this.end(s);
    } else if (untilUs !== undefined) {
      const wait = untilUs / 1000 - this.clock();
      if (wait < 0) this.end(s);
      else s.timer = setTimeout(() => this.end(s), wait + 1);
    }
    return off;
  }

  /**
   * The same as an async iterator: replay, then live events until `until` passes, the
   * bus closes, `signal` aborts or the loop breaks. Events wait in memory for the reader.
   */
  stream(opts: SubscribeOptions, signal?: AbortSignal): AsyncIterableIterator<DockerEvent> {
    const queue: DockerEvent[] = [];
    let done = false;
    let wake: (() => void) | undefined;
    const finish = (): void => {
      done = true;
      wake?.();
    };
    const off = this.subscribe(
      opts,
      (ev) => {
        queue.push(ev);
        wake?.();
      },
      finish,
    );
    const onAbort = (): void => {
      off();
      finish();
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    const stop = (): IteratorResult<DockerEvent> => {
      off();
      done = true;
      queue.length = 0;
      signal?.removeEventListener('abort', onAbort);
      return { done: true, value: undefined };
    };
    const it: AsyncIterableIterator<DockerEvent> = {
      async next() {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        if (queue.length) return { done: false, value: queue.shift() as DockerEvent };
        return stop();
      },
      async return() {
        return stop();
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  /** End every subscription (their `onEnd` runs). Later subscriptions end after replay.
   *  Closing twice is harmless. */
  close(): void {
    this.closed = true;
    for (const s of [...this.subs]) this.end(s);
  }

  private deliver(s: Subscriber, ev: DockerEvent): void {
    if (!s.match(ev)) return;
    try {
      s.onEvent(ev);
    } catch {
      this.end(s); // a broken subscriber must not break the emitter or the others
    }
  }

  private end(s: Subscriber): void {
    if (!this.subs.delete(s)) return;
    if (s.timer) clearTimeout(s.timer);
    try {
      s.onEnd?.();
    } catch {
      // the subscriber is gone either way
    }
  }
}

function toUs(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new InvalidArgumentError(`invalid ${name} value ${String(v)}`, { hint: 'give unix seconds, e.g. 1764309600.5' });
  }
  return Math.round(v * 1e6);
}

/** `busybox:1.36` -> `busybox`, `reg:5000/a/b@sha256:..` -> `reg:5000/a/b`. */
function stripTag(ref: string): string {
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
}

/**
 * A predicate for Docker's event filters (moby daemon/events/filter.go): `type`, `scope`
 * exact; `event`/`action` exact (prefix for the bare `exec_create`, `exec_start`,
 * `health_status`, whose actions carry a suffix); `container`, `volume`, `network`,
 * `daemon`: the Actor's ID or its `name` attribute, or a prefix of either; `image`: the
 * ID or the image (containers) / name (images) attribute, with or without its tag;
 * `label`: every `k` or `k=v` given is in the Attributes.
 */
export function eventFilter(filters: Record<string, string[]>): (ev: DockerEvent) => boolean {
  for (const k of Object.keys(filters)) {
    if (!FILTER_KEYS.has(k)) {
      throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: `filter on one of: ${[...FILTER_KEYS].join(', ')}` });
    }
    if (!Array.isArray(filters[k]) || filters[k].some((v) => typeof v !== 'string')) {
      throw new InvalidArgumentError(`filter '${k}' must be a list of strings`);
    }
  }
  const given = (k: string): string[] | undefined => (filters[k]?.length ? filters[k] : undefined);
  const exact = (k: string, ...sources: string[]): boolean => {
    const vs = given(k);
    return !vs || sources.some((s) => vs.includes(s));
  };
  const fuzzy = (k: string, ...sources: (string | undefined)[]): boolean => {
    const vs = given(k);
    return !vs || sources.some((s) => s !== undefined && vs.some((v) => s === v || s.startsWith(v)));
  };
  const actions = [...(filters.event ?? []), ...(filters.action ?? [])];
  const fuzzyActions = actions.some((a) => a === 'exec_create' || a === 'exec_start' || a === 'health_status');
  const labels = given('label');

  return (ev) => {
    const a = ev.Actor.Attributes;
    if (actions.length && !actions.some((v) => ev.Action === v || (fuzzyActions && ev.Action.startsWith(v)))) return false;
    if (!exact('type', ev.Type) || !exact('scope', ev.scope)) return false;
    for (const k of ['container', 'volume', 'network', 'daemon'] as const) {
      if (given(k) && !(ev.Type === k && fuzzy(k, ev.Actor.ID, a.name))) return false;
    }
    if (given('image')) {
      const name = a[ev.Type === 'image' ? 'name' : 'image'] ?? '';
      if (!exact('image', ev.Actor.ID, name, stripTag(ev.Actor.ID), stripTag(name))) return false;
    }
    if (labels) {
      for (const l of labels) {
        const eq = l.indexOf('=');
        const k = eq < 0 ? l : l.slice(0, eq);
        if (!Object.hasOwn(a, k) || (eq >= 0 && a[k] !== l.slice(eq + 1))) return false;
      }
    }
    return true;
  };
}
