import { InvalidArgumentError } from '../../volumes/shared/errors';
import { parseReference } from '../images/reference';
import { formatGoDuration, goDuration } from '../units';

/**
 * Scheduled snapshots with retention: the contract (the daemon's room is scheduler.ts, the
 * socket client src/client/schedules.ts), its words, and the pure parts (the spec's checks,
 * the snapshots' names, which snapshots retention keeps).
 *
 * Words:
 * - **schedule**: at most one per volume. Every `Every` (a Go duration, at least 1s) berthd
 *   takes a snapshot of the volume through the same path as `berth volume snapshot` (its
 *   containers frozen for the instant, `Pre`/`Post` run inside them), named
 *   `auto-YYYYMMDD-HHMMSS` (UTC; `-N` appended if the name is taken) and marked
 *   `scheduled: true` in its metadata.
 * - **retention**: after each snapshot it takes, the schedule removes its own snapshots
 *   (scheduled: true, an `auto-` name) beyond the newest `Keep`, except the newest of each of
 *   the `KeepDaily` most recent UTC days that have one (restic's and borg's --keep-daily).
 *   Manual snapshots are never touched; a snapshot with clones made on mount is kept (it
 *   goes at a later run, once its clones are gone).
 * - **timing**: the first run is one interval after the schedule is set; each next run one
 *   interval after the last one started. Runs of one schedule never overlap. A daemon that
 *   was down when runs were due takes ONE snapshot when it starts, not one per missed
 *   interval, and counts on from there.
 * - **push** (`Push`, `--push REF`): after each snapshot it takes, the run pushes it to REF
 *   through the daemon's registry sessions (`berth volume push`'s path, anonymous or with
 *   the daemon's own credentials), a delta from the snapshot it pushed last. Retention never
 *   removes that last pushed snapshot (the next delta's base). A push that fails is kept on
 *   the schedule (`LastPushError`, shown by `schedule ls`) with the snapshots still to go
 *   (`Unpushed`), and the next run pushes them, oldest first, before its own; the snapshot is
 *   never removed for it (retention may, as any scheduled snapshot: the newer ones carry its data).
 *
 * Worked example: `berth volume schedule pgdata --every 15m --keep 24 --keep-daily 7` keeps
 * the last six hours at 15-minute steps plus one snapshot a day for a week.
 */

/** PUT /berth/v1/volumes/{name}/schedule: what a schedule is set to. */
export interface VolumeScheduleSpec {
  /** A Go duration: '15m', '1h30m', '2s'. At least 1s. */
  Every: string;
  /** How many of its newest snapshots the schedule keeps (at least 1). */
  Keep: number;
  /** Also keep the newest of each of this many most recent days (default 0). */
  KeepDaily?: number;
  /** `sh -c` in each running container that uses the volume, before the freeze (as `volume snapshot --pre`). */
  Pre?: string;
  /** `sh -c` in those containers after the thaw (as `volume snapshot --post`). */
  Post?: string;
  /** Push each scheduled snapshot to this registry reference (name:tag, no digest). */
  Push?: string;
}

/** A schedule as berth's API shows it. */
export interface VolumeSchedule {
  Volume: string;
  /** Go's form of the interval: '15m0s'. */
  Every: string;
  Keep: number;
  KeepDaily: number;
  Pre?: string;
  Post?: string;
  /** ISO 8601: when the schedule was set. */
  CreatedAt: string;
  /** ISO 8601: when the last run started. */
  LastRun?: string;
  /** The snapshot the last successful run took. */
  LastSnapshot?: string;
  /** Why the last run failed (no snapshot then), or what its pruning could not remove; absent when it went well. */
  LastError?: string;
  /** ISO 8601: when the next run is due (a daemon that is down runs it at its next start). */
  NextRun: string;
  /** Where each scheduled snapshot is pushed. */
  Push?: string;
  /** The snapshot pushed last, and the bytes that push sent. */
  LastPushed?: string;
  LastPushSent?: number;
  /** Why the last push failed; absent once a push went well. */
  LastPushError?: string;
  /** Scheduled snapshots taken but not pushed yet (the next run pushes them first), oldest first. */
  Unpushed?: string[];
}

export interface VolumeScheduleService {
  /** The volume's schedule; NOT_FOUND if it has none (or there is no such volume). */
  get(volume: string): Promise<VolumeSchedule>;
  /** Every schedule, by volume name. */
  list(): Promise<VolumeSchedule[]>;
  /** Set (or replace) the volume's schedule. NOT_FOUND for a missing volume, INVALID_ARGUMENT for a bad spec. */
  set(volume: string, spec: VolumeScheduleSpec): Promise<VolumeSchedule>;
  /** Remove the volume's schedule (its snapshots stay). NOT_FOUND if it has none. */
  remove(volume: string): Promise<void>;
}

export const MIN_EVERY_MS = 1000;
export const MAX_EVERY_MS = 366 * 24 * 3_600_000;
export const MAX_KEEP = 10_000;
export const MAX_HOOK_BYTES = 4096;

const EVERY_HINT = "give a Go duration of at least 1s, e.g. --every 15m, 1h30m or 24h (no 'd': a day is 24h)";

/** A spec checked and normalised: the interval in ms. */
export interface CheckedSpec {
  everyMs: number;
  keep: number;
  keepDaily: number;
  pre?: string;
  post?: string;
  push?: string;
}

/**
 * Check a spec beyond its JSON shape (the API's schema checks that): the interval, the
 * counts, the hooks. `pushAvailable` is whether this berth can push volume snapshots.
 */
export function checkSpec(spec: VolumeScheduleSpec, pushAvailable = false): CheckedSpec {
  if (spec.Push !== undefined && spec.Push !== null && !pushAvailable) {
    throw new InvalidArgumentError('schedule --push is not available: this berth cannot push volume snapshots to a registry', {
      hint: 'schedule without --push; ship a snapshot by hand with: berth volume push VOLUME@SNAPSHOT REF',
    });
  }
  let push: string | undefined;
  if (spec.Push !== undefined && spec.Push !== null && spec.Push !== '') {
    let ref;
    try {
      ref = parseReference(spec.Push);
    } catch (e) {
      throw new InvalidArgumentError(`invalid Push (--push) reference ${JSON.stringify(spec.Push.slice(0, 80))}`, { hint: 'give a registry reference, e.g. --push myreg:5000/backups/pgdata:latest', cause: e });
    }
    if (ref.digest) throw new InvalidArgumentError('Push (--push) names a digest: each push moves a tag', { hint: 'give name:tag, e.g. --push myreg:5000/backups/pgdata:latest' });
    push = spec.Push;
  }
  if (typeof spec.Every !== 'string' || spec.Every === '') throw new InvalidArgumentError('a schedule needs an interval (Every, --every)', { hint: EVERY_HINT });
  const everyMs = goDuration(spec.Every);
  if (everyMs === undefined) throw new InvalidArgumentError(`invalid schedule interval ${JSON.stringify(spec.Every.slice(0, 40))}`, { hint: EVERY_HINT });
  if (everyMs < MIN_EVERY_MS || everyMs > MAX_EVERY_MS) {
    throw new InvalidArgumentError(`schedule interval ${spec.Every} is out of range: give 1s to ${MAX_EVERY_MS / 3_600_000}h`, { hint: EVERY_HINT });
  }
  if (spec.Keep === undefined || spec.Keep === null) {
    throw new InvalidArgumentError('a schedule needs a retention (Keep, --keep)', { hint: 'give how many of its newest snapshots to keep, e.g. --keep 24' });
  }
  const count = (v: number, what: string, min: number) => {
    if (!Number.isInteger(v) || v < min || v > MAX_KEEP) {
      throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(v)}`, { hint: `give a whole number from ${min} to ${MAX_KEEP}` });
    }
    return v;
  };
  const hook = (v: string | undefined, what: string) => {
    if (v === undefined || v === null || v === '') return undefined;
    if (Buffer.byteLength(v) > MAX_HOOK_BYTES || v.includes('\0')) {
      throw new InvalidArgumentError(`invalid ${what} command`, { hint: `give a shell command of at most ${MAX_HOOK_BYTES} bytes, without NUL` });
    }
    return v;
  };
  return {
    everyMs,
    keep: count(spec.Keep, 'Keep (--keep)', 1),
    keepDaily: count(spec.KeepDaily ?? 0, 'KeepDaily (--keep-daily)', 0),
    pre: hook(spec.Pre, 'Pre (--pre)'),
    post: hook(spec.Post, 'Post (--post)'),
    ...(push ? { push } : {}),
  };
}

/** Go's String() of an interval in ms: '15m0s'. */
export function everyString(ms: number): string {
  return formatGoDuration(ms * 1e6);
}

const AUTO_NAME = /^auto-\d{8}-\d{6}(-\d+)?$/;

/** The name of a scheduled snapshot taken at `at` (`n`: the n-th try when the name is taken). */
export function autoName(at: Date, n = 0): string {
  const s = at.toISOString(); // 2026-11-30T16:45:03.123Z
  const stamp = `${s.slice(0, 4)}${s.slice(5, 7)}${s.slice(8, 10)}-${s.slice(11, 13)}${s.slice(14, 16)}${s.slice(17, 19)}`;
  return `auto-${stamp}${n ? `-${n}` : ''}`;
}

/** The metadata mark of a snapshot a schedule took. */
export const SCHEDULED_MARK = { scheduled: true } as const;

/** Whether a snapshot is a schedule's own: its name AND its mark (a manual `auto-…` snapshot is not). */
export function isScheduled(s: { Name: string; Metadata: Record<string, unknown> }): boolean {
  return AUTO_NAME.test(s.Name) && s.Metadata.scheduled === true;
}

/**
 * Which of a volume's snapshots retention removes: of the schedule's own, all but the
 * newest `keep` and the newest of each of the `keepDaily` most recent UTC days. Oldest first.
 */
export function toPrune(snaps: { Name: string; CreatedAt: string; Metadata: Record<string, unknown> }[], keep: number, keepDaily: number): string[] {
  const own = snaps.filter(isScheduled).sort((a, b) => b.CreatedAt.localeCompare(a.CreatedAt) || b.Name.localeCompare(a.Name));
  const kept = new Set(own.slice(0, keep).map((s) => s.Name));
  const days = new Set<string>();
  for (const s of own) {
    if (days.size >= keepDaily) break;
    const day = new Date(s.CreatedAt).toISOString().slice(0, 10);
    if (days.has(day)) continue;
    days.add(day);
    kept.add(s.Name);
  }
  return own
    .filter((s) => !kept.has(s.Name))
    .map((s) => s.Name)
    .reverse();
}
