import { spawnSync } from 'node:child_process';

/** Small helpers shared by benchmarks: timing, medians, a printed comparison. */

export function timeIt(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { env: env ?? process.env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export interface Row {
  what: string;
  ms: number[];
}

/**
 * Print medians and the ratio of each row to the reference (the first row). `unit` names
 * what the rows hold (milliseconds unless told, e.g. 'MB/s' for rates; `Row.ms` holds them).
 */
export function report(title: string, rows: Row[], target?: string, unit = 'ms'): void {
  const ref = median(rows[0].ms);
  console.log(`\n## ${title}`);
  for (const r of rows) {
    const m = median(r.ms);
    console.log(`  ${r.what.padEnd(40)} median ${m.toFixed(1).padStart(9)} ${unit}  (${r.ms.length} runs)  ratio ${(m / ref).toFixed(2)}x`);
  }
  if (target) console.log(`  target: ${target}`);
}
