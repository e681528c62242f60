import { randomBytes } from 'node:crypto';
import { JsonStore } from '../../volumes/shared/atomic';
import { BerthError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { Lifecycle } from '../../volumes/shared/lifecycle';
import { autoName, checkSpec, everyString, SCHEDULED_MARK, toPrune, type VolumeSchedule, type VolumeScheduleService, type VolumeScheduleSpec } from './schedule';
import type { Volumes } from './volumes';

/**
 * berthd's room for scheduled snapshots (the contract and its words are schedule.ts).
 *
 * The schedules live in one record beside the volumes, `<root>/volume-schedules.json`,
 * written whole and atomically (JsonStore: temp file, fsync, rename), so a daemon killed at
 * any moment restarts with every schedule and its last run. A schedule goes with its volume:
 * `volume rm` and `prune` drop it and `rename` moves it, under the volume's gate (Volumes
 * tells this room through `watchRemovals`); schedules of volumes that are gone anyway (a
 * crash between the two) are swept at open, before the daemon serves.
 *
 * Each schedule has one unref'd timer, re-armed after each run from the record, so runs never
 * overlap and a run due while the daemon was down happens once, at open. A run takes its
 * snapshot through Volumes.snapshot, the path `POST …/snapshots` takes (the gate, --pre,
 * the freeze), then prunes through Volumes.removeSnapshot (which refuses a snapshot with
 * clones: kept until they are gone), then pushes (`Push`: the daemon's push of
 * transfers.ts, given as `push`; schedule.ts says what a failed push leaves). `close` stops
 * the timers and waits for runs under way.
 */

interface ScheduleRecord {
  /** New at every set (and move): a run of a replaced schedule must not write over its successor. */
  id: string;
  volume: string;
  everyMs: number;
  keep: number;
  keepDaily: number;
  pre?: string;
  post?: string;
  created: string;
  lastRun?: string;
  lastSnapshot?: string;
  lastError?: string;
  push?: string;
  lastPushed?: string;
  lastPushSent?: number;
  lastPushError?: string;
  /** Taken, not pushed yet, oldest first. */
  unpushed?: string[];
}

interface ScheduleDoc {
  version: 1;
  schedules: Record<string, ScheduleRecord>;
}

export interface SchedulerLog {
  info(msg: string): void;
  error(msg: string): void;
}

/** Push snapshot `snap` of `volume` to `ref` (the daemon's VolumeTransfers.push): the bytes sent. */
export type SchedulePush = (volume: string, snap: string, ref: string) => Promise<{ sent: number }>;

/** setTimeout's longest delay; a longer wait re-arms when it ends. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const SET_HINT = 'set one with: berth volume schedule VOLUME --every 15m --keep 24';

export class VolumeScheduler implements VolumeScheduleService {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly life = new Lifecycle('volume scheduler', 'restart the daemon');

  private constructor(
    private readonly store: JsonStore<ScheduleDoc>,
    private readonly volumes: Volumes,
    private readonly log: SchedulerLog,
    private readonly pusher?: SchedulePush,
  ) {}

  /** Open the record, drop schedules of missing volumes, arm every timer (a run overdue fires at once). */
  static async open(opts: { file: string; volumes: Volumes; log: SchedulerLog; push?: SchedulePush }): Promise<VolumeScheduler> {
    const store = await JsonStore.open<ScheduleDoc>(opts.file, { version: 1, schedules: {} });
    const s = new VolumeScheduler(store, opts.volumes, opts.log, opts.push);
    opts.volumes.watchRemovals((name, renamedTo) => s.volumeRemoved(name, renamedTo));
    await s.sweep();
    for (const name of Object.keys(store.read().schedules)) s.arm(name);
    return s;
  }

  async get(volume: string): Promise<VolumeSchedule> {
    this.life.check();
    const rec = this.store.read().schedules[volume];
    if (!rec) throw new NotFoundError(`volume ${volume} has no snapshot schedule`, { hint: SET_HINT });
    return view(rec);
  }

  async list(): Promise<VolumeSchedule[]> {
    this.life.check();
    return Object.values(this.store.read().schedules)
      .sort((a, b) => a.volume.localeCompare(b.volume))
      .map(view);
  }

  async set(volume: string, spec: VolumeScheduleSpec): Promise<VolumeSchedule> {
    this.life.check();
    const checked = checkSpec(spec, !!this.pusher);
    if (volume.includes('@')) {
      throw new InvalidArgumentError(`${volume} names a snapshot; a schedule belongs to a volume`, { hint: 'berth volume schedule VOLUME --every 15m --keep 24' });
    }
    // Under the volume's gate: a `volume rm` either sees the schedule (and drops it) or
    // happens first (and this finds no volume).
    const rec = await this.volumes.gate.run([volume], async () => {
      await this.volumes.inspect(volume); // NOT_FOUND for a missing volume
      return this.store.update((doc) => {
        const old = doc.schedules[volume];
        const next: ScheduleRecord = {
          id: randomBytes(8).toString('hex'),
          volume,
          ...checked,
          created: new Date().toISOString(),
          // A replaced schedule counts on from its last run, so changing --keep does not reset the clock.
          ...(old?.lastRun ? { lastRun: old.lastRun } : {}),
          ...(old?.lastSnapshot ? { lastSnapshot: old.lastSnapshot } : {}),
          // Pushing on to the same reference continues its chain (and what is still to go).
          ...(old?.push && old.push === checked.push
            ? { ...(old.lastPushed ? { lastPushed: old.lastPushed, lastPushSent: old.lastPushSent } : {}), ...(old.unpushed?.length ? { unpushed: old.unpushed } : {}), ...(old.lastPushError ? { lastPushError: old.lastPushError } : {}) }
            : {}),
        };
        if (!next.pre) delete next.pre;
        if (!next.post) delete next.post;
        if (!next.push) delete next.push;
        doc.schedules[volume] = next;
        return next;
      });
    });
    this.arm(volume);
    return view(rec);
  }

  async remove(volume: string): Promise<void> {
    this.life.check();
    await this.store.update((doc) => {
      if (!doc.schedules[volume]) throw new NotFoundError(`volume ${volume} has no snapshot schedule`, { hint: 'berth volume schedule ls shows the schedules there are' });
      delete doc.schedules[volume];
    });
    this.disarm(volume);
  }

  /** Stop the timers; wait for runs under way (they need the engine and the volumes, closed after this). Twice is harmless. */
  close(): Promise<void> {
    return this.life.close(async () => {
      for (const name of [...this.timers.keys()]) this.disarm(name);
      await Promise.allSettled([...this.running.values()]);
    });
  }

  /** Volumes tells: `name` was removed (its schedule goes) or renamed to `renamedTo` (its schedule follows). */
  private async volumeRemoved(name: string, renamedTo?: string): Promise<void> {
    const moved = await this.store.update((doc) => {
      const rec = doc.schedules[name];
      if (!rec) return false;
      delete doc.schedules[name];
      if (renamedTo === undefined) return false;
      doc.schedules[renamedTo] = { ...rec, id: randomBytes(8).toString('hex'), volume: renamedTo };
      return true;
    });
    this.disarm(name);
    if (moved && renamedTo !== undefined) this.arm(renamedTo);
  }

  /** Drop schedules whose volume is gone (a crash between a volume's removal and its schedule's). */
  private async sweep(): Promise<void> {
    for (const name of Object.keys(this.store.read().schedules)) {
      if (await this.volumeExists(name).catch(() => true)) continue; // unsure (the driver failed to open): keep it
      await this.store.update((doc) => void delete doc.schedules[name]);
      this.log.info(`volume schedule ${name}: dropped, the volume is gone`);
    }
  }

  private async volumeExists(name: string): Promise<boolean> {
    try {
      await this.volumes.inspect(name);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  private disarm(name: string): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }

  /** (Re)arm `name`'s timer from its record; nothing while it runs (the run re-arms when it ends). */
  private arm(name: string): void {
    this.disarm(name);
    if (this.life.closed || this.running.has(name)) return;
    const rec = this.store.read().schedules[name];
    if (!rec) return;
    const delay = Math.max(0, nextRun(rec) - Date.now());
    const t = setTimeout(() => this.fire(name), Math.min(delay, MAX_TIMER_MS));
    t.unref(); // a schedule never keeps the process alive by itself
    this.timers.set(name, t);
  }

  private fire(name: string): void {
    this.timers.delete(name);
    if (this.life.closed || this.running.has(name)) return;
    const rec = this.store.read().schedules[name];
    if (!rec) return;
    if (Date.now() < nextRun(rec)) return this.arm(name); // a wait longer than one timer
    const run = this.run(rec)
      .catch((e: Error) => this.log.error(`volume schedule ${name}: ${e.message}`))
      .finally(() => {
        this.running.delete(name);
        this.arm(name);
      });
    this.running.set(name, run);
  }

  /** One run: a snapshot, then retention. The record gets its start time and outcome (never a second run for the same interval). */
  private async run(rec: ScheduleRecord): Promise<void> {
    const started = new Date();
    let snapshot: string | undefined;
    let error: string | undefined;
    let pushed: Awaited<ReturnType<VolumeScheduler['pushAll']>> | undefined;
    try {
      snapshot = await this.take(rec, started);
      error = await this.prune(rec);
      if (rec.push) pushed = await this.pushAll(rec, snapshot);
    } catch (e) {
      if (e instanceof NotFoundError && !(await this.volumeExists(rec.volume).catch(() => true))) {
        await this.store.update((doc) => {
          if (doc.schedules[rec.volume]?.id === rec.id) delete doc.schedules[rec.volume];
        });
        this.log.info(`volume schedule ${rec.volume}: dropped, the volume is gone`);
        return;
      }
      error = e instanceof BerthError ? `${e.code}: ${e.message}` : (e as Error).message;
    }
    await this.store.update((doc) => {
      const cur = doc.schedules[rec.volume];
      if (cur?.id !== rec.id) return; // replaced or removed meanwhile: its successor keeps its own state
      cur.lastRun = started.toISOString();
      if (snapshot) cur.lastSnapshot = snapshot;
      if (error) cur.lastError = error;
      else delete cur.lastError;
      if (pushed) {
        if (pushed.lastPushed) cur.lastPushed = pushed.lastPushed;
        if (pushed.sent !== undefined) cur.lastPushSent = pushed.sent;
        if (pushed.error) cur.lastPushError = pushed.error;
        else delete cur.lastPushError;
        if (pushed.unpushed.length) cur.unpushed = pushed.unpushed;
        else delete cur.unpushed;
      }
    });
    if (error) this.log.error(`volume schedule ${rec.volume}: ${error}`);
    if (pushed?.error) this.log.error(`volume schedule ${rec.volume}: push to ${rec.push}: ${pushed.error}`);
  }

  /**
   * Push what is still to go and then `snapshot`, oldest first, stopping at the first failure:
   * what was pushed last, its bytes, the failure, and what is left (snapshots removed since
   * are dropped from it: a newer one carries their data).
   */
  private async pushAll(rec: ScheduleRecord, snapshot: string): Promise<{ lastPushed?: string; sent?: number; error?: string; unpushed: string[] }> {
    const held = new Set((await this.volumes.snapshots(rec.volume)).map((s) => s.Name));
    const queue = [...(rec.unpushed ?? []).filter((n) => held.has(n) && n !== snapshot), snapshot];
    const out: { lastPushed?: string; sent?: number; error?: string; unpushed: string[] } = { unpushed: [] };
    for (let i = 0; i < queue.length; i++) {
      try {
        const r = await this.pusher!(rec.volume, queue[i], rec.push!);
        out.lastPushed = queue[i];
        out.sent = r.sent;
        this.log.info(`volume schedule ${rec.volume}: pushed ${queue[i]} to ${rec.push} (${r.sent} bytes sent)`);
      } catch (e) {
        out.error = e instanceof BerthError ? `${e.code}: ${e.message}` : (e as Error).message;
        out.unpushed = queue.slice(i);
        break;
      }
    }
    return out;
  }

  private async take(rec: ScheduleRecord, at: Date): Promise<string> {
    // Only this room makes `auto-` names, one run per volume at a time: a name free now stays free.
    const taken = new Set((await this.volumes.snapshots(rec.volume)).map((s) => s.Name));
    let n = 0;
    while (taken.has(autoName(at, n))) n++;
    const s = await this.volumes.snapshot(rec.volume, autoName(at, n), { pre: rec.pre, post: rec.post }, { ...SCHEDULED_MARK });
    return s.Name;
  }

  /** Retention after a snapshot was taken (never after a failed one: backups only shrink when a new one is there). */
  private async prune(rec: ScheduleRecord): Promise<string | undefined> {
    const problems: string[] = [];
    for (const name of toPrune(await this.volumes.snapshots(rec.volume), rec.keep, rec.keepDaily)) {
      if (name === rec.lastPushed) continue; // the base of the next pushed delta
      try {
        await this.volumes.removeSnapshot(rec.volume, name);
      } catch (e) {
        if (e instanceof NotFoundError) continue; // removed by hand meanwhile
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
    return problems.length ? `retention kept ${problems.length} snapshot(s) it could not remove: ${problems.join('; ')}` : undefined;
  }
}

/** When `rec` is next due: one interval after its last run (or its setting); never more than one interval away (a clock set back). */
function nextRun(rec: ScheduleRecord): number {
  const due = Date.parse(rec.lastRun ?? rec.created) + rec.everyMs;
  return Math.min(due, Date.now() + rec.everyMs);
}

function view(rec: ScheduleRecord): VolumeSchedule {
  return {
    Volume: rec.volume,
    Every: everyString(rec.everyMs),
    Keep: rec.keep,
    KeepDaily: rec.keepDaily,
    ...(rec.pre ? { Pre: rec.pre } : {}),
    ...(rec.post ? { Post: rec.post } : {}),
    CreatedAt: rec.created,
    ...(rec.lastRun ? { LastRun: rec.lastRun } : {}),
    ...(rec.lastSnapshot ? { LastSnapshot: rec.lastSnapshot } : {}),
    ...(rec.lastError ? { LastError: rec.lastError } : {}),
    NextRun: new Date(nextRun(rec)).toISOString(),
    ...(rec.push ? { Push: rec.push } : {}),
    ...(rec.lastPushed ? { LastPushed: rec.lastPushed } : {}),
    ...(rec.lastPushSent !== undefined ? { LastPushSent: rec.lastPushSent } : {}),
    ...(rec.lastPushError ? { LastPushError: rec.lastPushError } : {}),
    ...(rec.unpushed?.length ? { Unpushed: [...rec.unpushed] } : {}),
  };
}
