import test from 'ava';
import { EventBus, type DockerEvent, type EventInput, type SubscribeOptions } from '../../src/engine/events';
import { eventually } from '../helpers/eventually';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}


const ctr = (Action: string, ID: string, Attributes: Record<string, string> = {}): EventInput => ({
  Type: 'container',
  Action,
  Actor: { ID, Attributes },
});

/** A bus holding a small history, for filter tests: each replayed with since 0. */
function history(): EventBus {
  const bus = new EventBus();
  bus.emit(ctr('create', 'aaaa1111', { name: 'web', image: 'nginx:1.25', 'com.example.tier': 'front' }));
  bus.emit(ctr('start', 'aaaa1111', { name: 'web', image: 'nginx:1.25', 'com.example.tier': 'front' }));
  bus.emit(ctr('start', 'bbbb2222', { name: 'db', image: 'postgres', 'com.example.tier': 'back', backup: '' }));
  bus.emit(ctr('exec_start: sh -c date', 'bbbb2222', { name: 'db', image: 'postgres' }));
  bus.emit({ Type: 'image', Action: 'pull', Actor: { ID: 'sha256:cafe', Attributes: { name: 'nginx:1.25' } } });
  bus.emit({ Type: 'volume', Action: 'create', Actor: { ID: 'pgdata', Attributes: { driver: 'btrfs' } } });
  bus.emit({ Type: 'network', Action: 'connect', Actor: { ID: 'net0001', Attributes: { name: 'bridge', container: 'aaaa1111' } } });
  return bus;
}

function replay(bus: EventBus, opts: SubscribeOptions): string[] {
  const got: string[] = [];
  const off = bus.subscribe({ since: 0, ...opts }, (ev) => got.push(`${ev.Type} ${ev.Action} ${ev.Actor.ID}`));
  off();
  return got;
}

test('emit fills in Docker\'s event shape', (t) => {
  const bus = new EventBus({ clock: () => 1_800_000_000_123 });
  const c = bus.emit(ctr('start', 'abc', { image: 'busybox', name: 'x' }));
  t.deepEqual(c, {
    status: 'start',
    id: 'abc',
    from: 'busybox',
    Type: 'container',
    Action: 'start',
    Actor: { ID: 'abc', Attributes: { image: 'busybox', name: 'x' } },
    scope: 'local',
    time: 1_800_000_000,
    timeNano: 1_800_000_000_123_000_000,
  });
  const i = bus.emit({ Type: 'image', Action: 'tag', Actor: { ID: 'sha256:1', Attributes: { name: 'a:b' } } });
  t.is(i.status, 'tag');
  t.is(i.id, 'sha256:1');
  t.false('from' in i, 'from is for container events');
  const v = bus.emit({ Type: 'volume', Action: 'create', Actor: { ID: 'v', Attributes: {} } });
  t.false('status' in v || 'id' in v || 'from' in v, 'deprecated fields only for containers and images');
  t.true(i.timeNano > c.timeNano && v.timeNano > i.timeNano, 'strictly increasing within one ms');
});

test('emit copies the attributes, so later changes by the caller do not rewrite history', (t) => {
  const bus = new EventBus();
  const attrs: Record<string, string> = { name: 'a' };
  bus.emit(ctr('start', 'id1', attrs));
  attrs.name = 'b';
  t.deepEqual(replay(bus, { filters: { container: ['a'] } }), ['container start id1']);
});

test('filter by type and by event (alias action)', (t) => {
  const bus = history();
  t.deepEqual(replay(bus, { filters: { type: ['image', 'volume'] } }), ['image pull sha256:cafe', 'volume create pgdata']);
  t.deepEqual(replay(bus, { filters: { event: ['start'] } }), ['container start aaaa1111', 'container start bbbb2222']);
  t.deepEqual(replay(bus, { filters: { action: ['create'], type: ['volume'] } }), ['volume create pgdata']);
  t.deepEqual(replay(bus, { filters: { event: ['exec_start'] } }), ['container exec_start: sh -c date bbbb2222'], 'exec_start matches its longer action');
});

test('filter by container: id, id prefix or name', (t) => {
  const bus = history();
  const webOnly = ['container create aaaa1111', 'container start aaaa1111'];
  t.deepEqual(replay(bus, { filters: { container: ['aaaa1111'] } }), webOnly);
  t.deepEqual(replay(bus, { filters: { container: ['aaaa'] } }), webOnly);
  t.deepEqual(replay(bus, { filters: { container: ['web'] } }), webOnly);
  t.deepEqual(replay(bus, { filters: { container: ['web', 'db'], event: ['start'] } }), ['container start aaaa1111', 'container start bbbb2222']);
  t.deepEqual(replay(bus, { filters: { container: ['nope'] } }), []);
});

test('filter by image: container events by their image, image events by their name, with or without tag', (t) => {
  const bus = history();
  t.deepEqual(replay(bus, { filters: { image: ['nginx'] } }), ['container create aaaa1111', 'container start aaaa1111', 'image pull sha256:cafe']);
  t.deepEqual(replay(bus, { filters: { image: ['nginx:1.25'] } }), ['container create aaaa1111', 'container start aaaa1111', 'image pull sha256:cafe']);
  t.deepEqual(replay(bus, { filters: { image: ['sha256:cafe'] } }), ['image pull sha256:cafe']);
  t.deepEqual(replay(bus, { filters: { image: ['postgres'], event: ['start'] } }), ['container start bbbb2222']);
});

test('filter by label: k or k=v, every one given must match', (t) => {
  const bus = history();
  t.deepEqual(replay(bus, { filters: { label: ['com.example.tier=back'] } }), ['container start bbbb2222']);
  t.deepEqual(replay(bus, { filters: { label: ['backup'] } }), ['container start bbbb2222'], 'a key with an empty value');
  t.deepEqual(replay(bus, { filters: { label: ['com.example.tier'] } }).length, 3);
  t.deepEqual(replay(bus, { filters: { label: ['com.example.tier=front', 'backup'] } }), []);
  t.deepEqual(replay(bus, { filters: { label: ['constructor'] } }), [], 'not fooled by Object.prototype');
});

test('filter by volume and network', (t) => {
  const bus = history();
  t.deepEqual(replay(bus, { filters: { volume: ['pgdata'] } }), ['volume create pgdata']);
  t.deepEqual(replay(bus, { filters: { network: ['bridge'] } }), ['network connect net0001']);
  t.deepEqual(replay(bus, { filters: { network: ['net0'] } }), ['network connect net0001']);
});

test('an unknown filter key or since after until is INVALID_ARGUMENT', (t) => {
  const bus = new EventBus();
  t.is(codeOf(() => bus.subscribe({ filters: { colour: ['red'] } }, () => undefined)), 'INVALID_ARGUMENT');
  t.is(codeOf(() => bus.subscribe({ since: 20, until: 10 }, () => undefined)), 'INVALID_ARGUMENT');
  t.is(codeOf(() => bus.subscribe({ since: Number.NaN }, () => undefined)), 'INVALID_ARGUMENT');
});

test('since replays the ring from that time, then live events follow without a gap', (t) => {
  let now = 1_800_000_000_000;
  const bus = new EventBus({ clock: () => now });
  bus.emit(ctr('create', 'a'));
  now += 1000;
  const second = bus.emit(ctr('start', 'a'));
  now += 1000;
  bus.emit(ctr('die', 'a'));
  const got: string[] = [];
  const off = bus.subscribe({ since: second.timeNano / 1e9 }, (ev) => got.push(ev.Action));
  t.deepEqual(got, ['start', 'die'], 'replayed before subscribe returns');
  bus.emit(ctr('destroy', 'a'));
  t.deepEqual(got, ['start', 'die', 'destroy']);
  off();
  off(); // twice is harmless
  bus.emit(ctr('create', 'b'));
  t.is(got.length, 3);
});

test('since an event\'s own timeNano replays from exactly that event, even within one ms', (t) => {
  const bus = new EventBus({ clock: () => 1_800_000_000_777 });
  bus.emit(ctr('create', 'a'));
  const second = bus.emit(ctr('start', 'a'));
  bus.emit(ctr('die', 'a'));
  t.deepEqual(replay(bus, { since: second.timeNano / 1e9 }), ['container start a', 'container die a']);
  t.deepEqual(replay(bus, { since: 0, until: second.timeNano / 1e9 }), ['container create a', 'container start a']);
});

test('without since or until nothing is replayed', (t) => {
  const bus = history();
  const got: DockerEvent[] = [];
  const off = bus.subscribe({}, (ev) => got.push(ev));
  t.is(got.length, 0);
  bus.emit(ctr('stop', 'x'));
  t.is(got.length, 1);
  off();
});

test('the ring keeps the last 1024 events', (t) => {
  const bus = new EventBus();
  for (let i = 0; i < 1100; i++) bus.emit(ctr('start', `c${i}`));
  const got = replay(bus, {});
  t.is(got.length, 1024);
  t.is(got[0], 'container start c76');
  t.is(got[1023], 'container start c1099');
});

test('an until in the past replays up to it and ends at once', (t) => {
  let now = 1_800_000_000_000;
  const bus = new EventBus({ clock: () => now });
  bus.emit(ctr('create', 'a'));
  now += 2000;
  bus.emit(ctr('start', 'a'));
  const got: string[] = [];
  let ended = 0;
  bus.subscribe({ until: 1_800_000_001 }, (ev) => got.push(ev.Action), () => ended++);
  t.deepEqual(got, ['create']);
  t.is(ended, 1);
  bus.emit(ctr('die', 'a'));
  t.deepEqual(got, ['create']);
});

test('until in the future: live events until then, then the subscription ends', async (t) => {
  const bus = new EventBus();
  const got: string[] = [];
  const ended = new Promise<void>((resolve) => bus.subscribe({ until: Date.now() / 1000 + 2 }, (ev) => got.push(ev.Action), resolve));
  bus.emit(ctr('start', 'a'));
  await ended;
  bus.emit(ctr('die', 'a'));
  t.deepEqual(got, ['start']);
});

test('a subscriber that throws is ended and the others still get the event', (t) => {
  const bus = new EventBus();
  let badEnded = false;
  const good: string[] = [];
  bus.subscribe({}, () => {
    throw new Error('client went away');
  }, () => (badEnded = true));
  bus.subscribe({}, (ev) => good.push(ev.Action));
  t.notThrows(() => bus.emit(ctr('start', 'a')));
  bus.emit(ctr('stop', 'a'));
  t.true(badEnded);
  t.deepEqual(good, ['start', 'stop']);
});

test('close ends every subscription; closing twice is harmless', (t) => {
  const bus = new EventBus();
  let ends = 0;
  bus.subscribe({}, () => undefined, () => ends++);
  bus.subscribe({ filters: { type: ['image'] } }, () => undefined, () => ends++);
  bus.close();
  bus.close();
  t.is(ends, 2);
  bus.subscribe({}, () => undefined, () => ends++);
  t.is(ends, 3, 'a subscription after close ends after its replay');
});

test('stream: the same as an async iterator, ending at until', async (t) => {
  const bus = history();
  const it = bus.stream({ since: 0, until: Date.now() / 1000 + 3, filters: { type: ['container'], event: ['start', 'die'] } });
  const got: string[] = [];
  for await (const ev of it) {
    got.push(`${ev.Action} ${ev.Actor.ID}`);
    if (got.length === 2) bus.emit(ctr('die', 'aaaa1111')); // live, once the replay has come
  }
  t.deepEqual(got, ['start aaaa1111', 'start bbbb2222', 'die aaaa1111']);
});

test('stream: breaking out unsubscribes, an abort ends it', async (t) => {
  const bus = history();
  for await (const ev of bus.stream({ since: 0 })) {
    t.is(ev.Action, 'create');
    break;
  }
  const ac = new AbortController();
  const got: string[] = [];
  const done = (async () => {
    for await (const ev of bus.stream({}, ac.signal)) got.push(ev.Action);
  })();
  bus.emit(ctr('kill', 'a'));
  await eventually(() => got.length === 1, { message: 'the live event to come through' });
  ac.abort();
  await done;
  bus.emit(ctr('die', 'a'));
  t.deepEqual(got, ['kill']);
});
