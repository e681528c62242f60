import test from 'ava';
import { autoName, checkSpec, toPrune } from '../../src/volumes/schedule';

/** The pure parts of scheduled snapshots: retention's choice, the names, the spec's checks. */

const snap = (iso: string, scheduled = true, name = autoName(new Date(iso))) => ({ Name: name, CreatedAt: iso, Metadata: scheduled ? { scheduled: true } : {} });

test('retention keeps the newest --keep of the schedule\'s own snapshots and removes the rest, oldest first', (t) => {
  const snaps = ['2026-11-30T10:00:00Z', '2026-11-30T10:15:00Z', '2026-11-30T10:30:00Z', '2026-11-30T10:45:00Z'].map((x) => snap(x));
  t.deepEqual(toPrune(snaps, 2, 0), [snaps[0].Name, snaps[1].Name]);
  t.deepEqual(toPrune(snaps, 4, 0), []);
  t.deepEqual(toPrune([...snaps].reverse(), 1, 0), [snaps[0].Name, snaps[1].Name, snaps[2].Name], 'order of the listing does not matter');
});

test('retention never counts nor removes manual snapshots, even auto- named ones', (t) => {
  const mine = [snap('2026-11-30T10:00:00Z'), snap('2026-11-30T11:00:00Z')];
  const manual = [snap('2026-11-30T12:00:00Z', false), { Name: 'nightly', CreatedAt: '2026-11-30T13:00:00Z', Metadata: { scheduled: true } }];
  t.deepEqual(toPrune([...mine, ...manual], 1, 0), [mine[0].Name]);
});

test('--keep-daily also keeps the newest snapshot of each of the last N days that have one (UTC)', (t) => {
  const snaps = [
    '2026-11-25T23:00:00Z', // day 1 (newest of it)
    '2026-11-25T08:00:00Z',
    '2026-11-27T12:00:00Z', // day 2 (a day without any between)
    '2026-11-28T01:00:00Z',
    '2026-11-28T22:00:00Z', // day 3
    '2026-11-29T10:00:00Z', // day 4
    '2026-11-29T11:00:00Z',
  ].map((x) => snap(x));
  const names = (isos: string[]) => isos.map((x) => autoName(new Date(x)));
  // keep 1: the newest; keep-daily 3: the newest of 11-29 (the same one), 11-28 and 11-27.
  t.deepEqual(toPrune(snaps, 1, 3), names(['2026-11-25T08:00:00Z', '2026-11-25T23:00:00Z', '2026-11-28T01:00:00Z', '2026-11-29T10:00:00Z']));
  t.deepEqual(toPrune(snaps, 1, 10), names(['2026-11-25T08:00:00Z', '2026-11-28T01:00:00Z', '2026-11-29T10:00:00Z']));
});

test('scheduled snapshot names are auto-YYYYMMDD-HHMMSS in UTC, with -N when taken', (t) => {
  const at = new Date('2026-11-30T16:05:09.987Z');
  t.is(autoName(at), 'auto-20261130-160509');
  t.is(autoName(at, 2), 'auto-20261130-160509-2');
});

test('a spec: Go durations from 1s, counts in range, --push refused until volume push exists', (t) => {
  t.like(checkSpec({ Every: '1h30m', Keep: 24, KeepDaily: 7 }), { everyMs: 5_400_000, keep: 24, keepDaily: 7 });
  t.is(checkSpec({ Every: '1s', Keep: 1 }).everyMs, 1000);
  for (const Every of ['', '1d', '0', '999ms', '15', 'm', '-1s', '9000h']) t.throws(() => checkSpec({ Every, Keep: 1 }), { code: 'INVALID_ARGUMENT' } as never, Every);
  for (const Keep of [0, -1, 1.5, 10_001]) t.throws(() => checkSpec({ Every: '1m', Keep }), { code: 'INVALID_ARGUMENT' } as never, String(Keep));
  t.throws(() => checkSpec({ Every: '1m', Keep: 1, KeepDaily: -1 }), { code: 'INVALID_ARGUMENT' } as never);
  t.throws(() => checkSpec({ Every: '1m', Keep: 1, Push: 'localhost:5000/v' }), { code: 'INVALID_ARGUMENT' } as never);
  t.throws(() => checkSpec({ Every: '1m', Keep: 1, Pre: 'x'.repeat(5000) }), { code: 'INVALID_ARGUMENT' } as never);
});
