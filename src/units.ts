import { InvalidArgumentError } from '../volumes/shared/errors';

/** Units every layer reads and writes as Docker does (sizes, Go durations, human durations): below the engine, the images and the CLI alike. */

/**
 * Docker's size strings (go-units RAMInBytes): a number with an optional unit b, k, m, g,
 * t, p (case-insensitive, an optional trailing 'b' or 'ib'), powers of 1024: '10m' is
 * 10485760. Used for the json-file log's max-size.
 */
export function parseSize(s: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(s);
  if (!m) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}`, { hint: 'give a size such as 512k, 10m or 1g' });
  }
  const mult = 1024 ** ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.floor(Number(m[1]) * mult);
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ('10m', '1h30m', '1.5s', '0') in ms, or undefined if `s` is not one (no sign). */
export function goDuration(s: string): number | undefined {
  if (s === '0') return 0;
  if (!/^(\d+(\.\d+)?(ns|us|µs|μs|ms|s|m|h))+$/.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
  return ms;
}

/** Nanoseconds as Go's time.Duration.String() writes them: '30s', '1m30s', '1h0m0s', '500ms', '0s'. */
export function formatGoDuration(ns: number): string {
  const n = Math.round(Math.abs(ns));
  const sign = ns < 0 ? '-' : '';
  const frac = (v: number, div: number) => {
    const whole = Math.floor(v / div);
    const rest = v % div;
    if (rest === 0) return String(whole);
    return `${whole}.${String(rest).padStart(String(div).length - 1, '0').replace(/0+$/, '')}`;
  };
  if (n === 0) return '0s';
  if (n < 1e3) return `${sign}${n}ns`;
  if (n < 1e6) return `${sign}${frac(n, 1e3)}µs`;
  if (n < 1e9) return `${sign}${frac(n, 1e6)}ms`;
  const h = Math.floor(n / 3.6e12);
  const m = Math.floor((n % 3.6e12) / 6e10);
  const s = frac(n % 6e10, 1e9);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}

/**
 * go-units HumanDuration, the one table of ages: Docker's Status strings ('Up 3 minutes',
 * 'Exited (0) 2 hours ago') and the CLI's CREATED columns ('3 minutes ago') both use it, so
 * `ps` shows the same age in both. Seconds and minutes are truncated, hours rounded, as Go does.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}
