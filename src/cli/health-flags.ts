import type { Command } from 'commander';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { goDuration } from '../units';
import type { HealthConfig } from '../images/service';

/** `run`/`create`'s health check flags, as the docker CLI has them. */
export interface HealthFlags {
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthStartPeriod?: string;
  healthRetries?: string;
  /** false with --no-healthcheck (commander's negated option). */
  healthcheck?: boolean;
}

export function healthOptions(c: Command): Command {
  return c
    .option('--health-cmd <command>', 'command to run to check health (run with /bin/sh -c inside the container; exit 0 healthy)')
    .option('--health-interval <duration>', 'time between checks, e.g. 5s, 1m (default 30s)')
    .option('--health-timeout <duration>', 'time one check may take before it is killed and fails (default 30s)')
    .option('--health-start-period <duration>', 'start-up time during which failures do not count (default 0s)')
    .option('--health-retries <n>', 'consecutive failures needed to report unhealthy (default 3)')
    .option('--no-healthcheck', "disable any health check, the image's HEALTHCHECK included");
}

function nanos(v: string | undefined, flag: string): number {
  if (v === undefined) return 0;
  if (v.startsWith('-')) throw new InvalidArgumentError(`${flag} cannot be negative`, { hint: `give a duration such as 5s or 1m30s to ${flag}` });
  const ms = goDuration(v);
  if (ms === undefined) throw new InvalidArgumentError(`invalid duration ${JSON.stringify(v)} for ${flag}`, { hint: 'give a duration such as 500ms, 5s or 1m30s' });
  return Math.round(ms * 1e6);
}

/** The create body's Config.Healthcheck from the flags (undefined: the image's stays), as the docker CLI builds it. */
export function healthcheckFromFlags(o: HealthFlags): HealthConfig | undefined {
  const interval = nanos(o.healthInterval, '--health-interval');
  const timeout = nanos(o.healthTimeout, '--health-timeout');
  const startPeriod = nanos(o.healthStartPeriod, '--health-start-period');
  let retries = 0;
  if (o.healthRetries !== undefined) {
    retries = Number(o.healthRetries);
    if (!/^-?\d+$/.test(o.healthRetries)) throw new InvalidArgumentError(`invalid --health-retries ${JSON.stringify(o.healthRetries)}`, { hint: 'give a whole number, e.g. --health-retries 3' });
    if (retries < 0) throw new InvalidArgumentError('--health-retries cannot be negative', { hint: 'give 0 (the default, 3) or more' });
  }
  const any = !!o.healthCmd || interval !== 0 || timeout !== 0 || startPeriod !== 0 || retries !== 0;
  if (o.healthcheck === false) {
    if (any) throw new InvalidArgumentError('--no-healthcheck conflicts with --health-* options', { hint: 'drop --no-healthcheck, or the --health-* flags' });
    return { Test: ['NONE'] };
  }
  if (!any) return undefined;
  return {
    ...(o.healthCmd ? { Test: ['CMD-SHELL', o.healthCmd] } : {}),
    ...(interval ? { Interval: interval } : {}),
    ...(timeout ? { Timeout: timeout } : {}),
    ...(startPeriod ? { StartPeriod: startPeriod } : {}),
    ...(retries ? { Retries: retries } : {}),
  };
}
