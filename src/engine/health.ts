import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { HealthConfig } from '../images/service';
import type { ContainerRecord } from './container-record';
import type { HealthResult, HealthState } from './service';
import { formatGoDuration } from '../units';

/**
 * Health checks, as Docker runs them (moby daemon/health.go).
 *
 * Words: a container's *health config* is Config.Healthcheck (from the create body, merged
 * over the image's HEALTHCHECK); its *probe* is the command it names: `["CMD", cmd, args...]`
 * runs cmd, `["CMD-SHELL", "cmd"]` runs it with the container's Shell (default /bin/sh -c), and
 * `["NONE"]` (or no config) means no checks. Durations are nanoseconds, 0 meaning the
 * default: Interval 30s, Timeout 30s, StartPeriod 0, Retries 3.
 *
 * Lifecycle: when a run starts (`begin`), State.Health becomes `starting` with a failing
 * streak of 0 (the log of earlier results is kept), and the probe runs Interval after the
 * start, then Interval after the end of each probe, through the engine's exec path. A probe
 * that outlives Timeout is killed and counts as a failure (exit -1). Exit 0 makes the
 * container `healthy` and resets the streak; any other exit adds one to the streak — except
 * while still `starting` within StartPeriod of the start — and at Retries it is
 * `unhealthy`. The last 5 results are kept, each with at most 4096 bytes of output (then
 * "..."). A change of status is saved in the record and told as a `health_status: STATUS`
 * event. Checks stop with the run or a pause (`end`; the status becomes `unhealthy`, without
 * an event, as Docker's does); they go on after an unpause or when a restarted daemon
 * adopts a running container (`resume`, which keeps the recorded state). `close` (the
 * daemon stops, containers run on) stops the timers and changes nothing.
 *
 * Example
 *   const health = new HealthChecks({ exec, save, emit, log });
 *   health.begin(c);   // after the container started
 *   health.end(c);     // before its exit is recorded
 */

export type { HealthResult, HealthState, HealthStatus } from './service';

const MS = 1e6; // ns per ms
export const DEFAULT_INTERVAL_NS = 30_000 * MS;
export const DEFAULT_TIMEOUT_NS = 30_000 * MS;
export const DEFAULT_RETRIES = 3;
/** Results kept in State.Health.Log. */
export const MAX_LOG_ENTRIES = 5;
/** Output bytes kept per result. */
export const MAX_OUTPUT = 4096;

const DURATIONS = ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const;
const FIELDS = new Set<string>(['Test', ...DURATIONS, 'Retries']);

/**
 * A Config.Healthcheck as given (create body, image config), checked: Test is NONE, CMD
 * with a command or CMD-SHELL with one (or empty: inherit the image's); durations are 0
 * or at least 1ms; Retries is not negative. `what` names it in errors.
 */
export function checkHealthConfig(v: unknown, what = 'Healthcheck'): HealthConfig | undefined {
  if (v === undefined || v === null) return undefined;
  const hint = 'give Healthcheck as {"Test": ["CMD-SHELL", "command"], "Interval": ns, "Timeout": ns, "StartPeriod": ns, "Retries": n}, e.g. --health-cmd "redis-cli ping"';
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be an object`, { hint });
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!FIELDS.has(k)) throw new InvalidArgumentError(`unknown field ${what}.${k}`, { hint });
  }
  const out: HealthConfig = {};
  if (o.Test !== undefined && o.Test !== null) {
    if (!Array.isArray(o.Test) || !o.Test.every((x) => typeof x === 'string')) {
      throw new InvalidArgumentError(`${what}.Test must be a list of strings`, { hint });
    }
    const test = o.Test as string[];
    if (test.length > 0) {
      const kind = test[0];
      if (kind !== 'NONE' && kind !== 'CMD' && kind !== 'CMD-SHELL') {
        throw new InvalidArgumentError(`unknown health check type ${JSON.stringify(kind)} in ${what}.Test`, { hint: 'start Test with CMD, CMD-SHELL or NONE' });
      }
      if (kind === 'NONE' && test.length > 1) {
        throw new InvalidArgumentError(`${what}.Test: NONE takes no arguments`, { hint: 'give ["NONE"] to turn checks off' });
      }
      if (kind !== 'NONE' && (test.length < 2 || test[1] === '')) {
        throw new InvalidArgumentError(`${what}.Test: ${kind} needs a command`, { hint: `e.g. ["${kind}", ${kind === 'CMD' ? '"redis-cli", "ping"' : '"redis-cli ping"'}]` });
      }
    }
    out.Test = [...test];
  }
  for (const k of DURATIONS) {
    const d = o[k];
    if (d === undefined || d === null) continue;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new InvalidArgumentError(`${what}.${k} must be a whole number of nanoseconds, 0 or more`, { hint: 'e.g. 5000000000 for 5s; 0 takes the default' });
    }
    if (d > 0 && d < MS) throw new InvalidArgumentError(`${k} in ${what} cannot be less than 1ms`, { hint: 'give at least 1000000 (1ms), or 0 for the default' });
    if (d > 0) out[k] = d;
  }
  if (o.Retries !== undefined && o.Retries !== null) {
    if (typeof o.Retries !== 'number' || !Number.isInteger(o.Retries)) throw new InvalidArgumentError(`${what}.Retries must be a whole number`, { hint });
    if (o.Retries < 0) throw new InvalidArgumentError(`Retries in ${what} cannot be negative`, { hint: 'give 0 (the default, 3) or more' });
    if (o.Retries > 0) out.Retries = o.Retries;
  }
  return out;
}

/** moby's merge: the user's config over the image's, field by field (empty Test and 0 inherit). */
export function mergeHealthConfig(user: HealthConfig | null | undefined, image: HealthConfig | null | undefined): HealthConfig | undefined {
  if (!user) return image ? structuredClone(image) : undefined;
  const out = structuredClone(user);
  if (!image) return out;
  if (!out.Test?.length && image.Test?.length) out.Test = [...image.Test];
  for (const k of [...DURATIONS, 'Retries'] as const) if (!out[k] && image[k]) out[k] = image[k];
  return out;
}

/** The command a health config runs, or undefined when it runs none (no config, empty Test, NONE). */
export function probeCommand(cfg: HealthConfig | null | undefined, shell?: string[] | null): string[] | undefined {
  const test = cfg?.Test;
  if (!test?.length || test[0] === 'NONE') return undefined;
  if (test[0] === 'CMD') return test.slice(1);
  // CMD-SHELL: the container's Config.Shell, else Docker's default.
  return [...(shell?.length ? shell : ['/bin/sh', '-c']), ...test.slice(1)];
}

/** What `docker ps` adds to 'Up 3 seconds': '(healthy)', '(health: starting)', '(unhealthy)'. */
export function healthSuffix(h: HealthState | undefined): string {
  if (!h) return '';
  return h.Status === 'starting' ? ' (health: starting)' : ` (${h.Status})`;
}

/** `docker ps --filter health=`: a container's health status, 'none' without checks. */
export function healthFilterValue(rec: ContainerRecord): string {
  return rec.State.Health?.Status ?? 'none';
}

export const HEALTH_FILTER_VALUES = new Set(['starting', 'healthy', 'unhealthy', 'none']);

/** A container as the checks see it (the engine's LiveContainer). */
export interface HealthTarget {
  readonly id: string;
  readonly rec: ContainerRecord;
}

export interface HealthHooks {
  /**
   * Run `cmd` in the running container through the exec path, stdout and stderr collected
   * together (the first MAX_OUTPUT bytes, then "..."); aborting `signal` kills the process.
   */
  exec(id: string, cmd: string[], signal: AbortSignal): Promise<{ code: number; output: string }>;
  /** Persist the record (State.Health changed). */
  save(rec: ContainerRecord): Promise<void>;
  /** Tell a container event (`health_status: healthy`). */
  emit(rec: ContainerRecord, action: string): void;
  log(msg: string): void;
}

/** The checks of every container whose run is being checked. */
export class HealthChecks {
  private readonly checkers = new Map<string, Checker>();

  constructor(private readonly hooks: HealthHooks) {}

  /** A run started: Health to `starting`, streak 0 (the log kept), first probe after Interval. */
  begin(c: HealthTarget): void {
    this.stopChecker(c.id);
    if (!probeCommand(c.rec.Config.Healthcheck, c.rec.Config.Shell)) return;
    const prev = c.rec.State.Health;
    c.rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: prev?.Log ?? [] };
    this.startChecker(c);
  }

  /** Go on checking (unpause, adopted after a daemon restart), from the recorded state. */
  resume(c: HealthTarget): void {
    if (this.checkers.has(c.id) || !probeCommand(c.rec.Config.Healthcheck, c.rec.Config.Shell)) return;
    c.rec.State.Health ??= { Status: 'starting', FailingStreak: 0, Log: [] };
    this.startChecker(c);
  }

  /**
   * The run ended or was paused: stop checking (a probe in flight is killed). The status
   * becomes `unhealthy`, as Docker's does; the caller saves the record.
   */
  end(c: HealthTarget): void {
    if (!this.stopChecker(c.id)) return;
    const h = c.rec.State.Health;
    if (h) c.rec.State.Health = { ...h, Status: 'unhealthy' };
  }

  /** The daemon closes (containers run on): stop every timer and probe, record nothing. */
  close(): void {
    for (const id of [...this.checkers.keys()]) this.stopChecker(id);
  }

  private startChecker(c: HealthTarget): void {
    const k = new Checker(c, this.hooks);
    this.checkers.set(c.id, k);
    k.schedule();
  }

  private stopChecker(id: string): boolean {
    const k = this.checkers.get(id);
    if (!k) return false;
    this.checkers.delete(id);
    k.stop();
    return true;
  }
}

/** One container's probe loop, for one run (a new run gets a new one). */
class Checker {
  private timer?: NodeJS.Timeout;
  private probe?: AbortController;
  private stopped = false;

  constructor(
    private readonly c: HealthTarget,
    private readonly hooks: HealthHooks,
  ) {}

  private get cfg(): HealthConfig {
    return this.c.rec.Config.Healthcheck ?? {};
  }

  /** The next probe: Interval after now (StartInterval instead while starting within StartPeriod). */
  schedule(): void {
    if (this.stopped) return;
    const cfg = this.cfg;
    const h = this.c.rec.State.Health;
    const sinceStart = Date.now() - Date.parse(this.c.rec.State.StartedAt);
    const inStart = h?.Status === 'starting' && cfg.StartInterval && sinceStart < (cfg.StartPeriod ?? 0) / MS;
    const ns = inStart ? cfg.StartInterval! : cfg.Interval || DEFAULT_INTERVAL_NS;
    this.timer = setTimeout(() => void this.run(), ns / MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.probe?.abort();
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    const cmd = probeCommand(this.cfg, this.c.rec.Config.Shell);
    if (!cmd) return;
    const timeoutNs = this.cfg.Timeout || DEFAULT_TIMEOUT_NS;
    const ac = new AbortController();
    this.probe = ac;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, timeoutNs / MS);
    const start = new Date();
    let code: number;
    let output: string;
    try {
      ({ code, output } = await this.hooks.exec(this.c.id, cmd, ac.signal));
    } catch (e) {
      code = -1;
      output = e instanceof Error ? e.message : String(e);
    } finally {
      clearTimeout(timer);
      this.probe = undefined;
    }
    if (this.stopped) return; // stopped meanwhile: the result is not the run's any more
    if (timedOut) {
      code = -1;
      output = `Health check exceeded timeout (${formatGoDuration(timeoutNs)})`;
    }
    this.record({ Start: start.toISOString(), End: new Date().toISOString(), ExitCode: code, Output: output }, start.getTime());
    this.schedule();
  }

  /** moby's handleProbeResult. */
  private record(result: HealthResult, startMs: number): void {
    const rec = this.c.rec;
    const cfg = this.cfg;
    const h = rec.State.Health ?? { Status: 'starting', FailingStreak: 0, Log: [] };
    const next: HealthState = { Status: h.Status, FailingStreak: h.FailingStreak, Log: [...h.Log, result].slice(-MAX_LOG_ENTRIES) };
    if (result.ExitCode === 0) {
      next.FailingStreak = 0;
      next.Status = 'healthy';
    } else {
      const inStartPeriod = h.Status === 'starting' && startMs - Date.parse(rec.State.StartedAt) < (cfg.StartPeriod ?? 0) / MS;
      if (!inStartPeriod) {
        next.FailingStreak++;
        if (next.FailingStreak >= (cfg.Retries || DEFAULT_RETRIES)) next.Status = 'unhealthy';
      }
    }
    rec.State.Health = next;
    this.hooks.save(rec).catch((e) => this.hooks.log(`${rec.Id}: saving its health: ${e instanceof Error ? e.message : String(e)}`));
    if (next.Status !== h.Status) this.hooks.emit(rec, `health_status: ${next.Status}`);
  }
}
