import * as fs from 'node:fs';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { RestartPolicy } from '../engine/service';

/** Parsers for docker-style flag values; each bad value is a typed error with a hint. */

/** `512m`, `1g`, `1024` (bytes), `1.5GB` → bytes (docker's RAMInBytes: binary units). */
export function parseBytes(v: string, flag = '--memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`invalid size ${JSON.stringify(v)} for ${flag}`, { hint: 'use a number with an optional unit: 512m, 1g, 1024k' });
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2].toLowerCase()] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** `--cpus 1.5` → NanoCpus. */
export function parseCpus(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`invalid --cpus ${JSON.stringify(v)}`, { hint: 'give a positive number of CPUs, e.g. --cpus 1.5' });
  }
  return Math.round(n * 1e9);
}

/** `--restart no|always|unless-stopped|on-failure[:N]`. */
export function parseRestart(v: string): RestartPolicy {
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(v);
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure')) {
    throw new InvalidArgumentError(`invalid restart policy ${JSON.stringify(v)}`, { hint: 'use no, always, unless-stopped or on-failure[:max-retries]' });
  }
  return { Name: m[1] as RestartPolicy['Name'], MaximumRetryCount: m[2] ? Number(m[2]) : 0 };
}

/** `--env-file FILE`: KEY=VALUE lines; `#` comments; a bare KEY takes the value from our env. */
export function readEnvFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new NotFoundError(`env file ${file} not found`, { hint: 'check the path given to --env-file' });
  }
  return text
    .split('\n')
    .map((l) => l.replace(/^\s+/, ''))
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => expandEnv(l))
    .filter((l): l is string => l !== undefined);
}

/** `-e KEY=VALUE` as is; `-e KEY` takes KEY's value from our environment (dropped if unset). */
export function expandEnv(e: string): string | undefined {
  if (e.includes('=')) return e;
  return process.env[e] === undefined ? undefined : `${e}=${process.env[e]}`;
}

/** `--label k=v` (or `k`) → {k: v}. */
export function parseLabels(list: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    out[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  return out;
}

/** `--log-opt max-size=10m` → {max-size: '10m'}. */
export function parseKeyValues(list: string[] = [], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    if (i < 1) throw new InvalidArgumentError(`invalid ${flag} ${JSON.stringify(l)}`, { hint: `use ${flag} key=value` });
    out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** `--filter k=v` (repeatable) → Docker's filters map {k: [v, ...]}. */
export function parseFilters(list: string[] = []): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of list) {
    const i = f.indexOf('=');
    if (i < 1) throw new InvalidArgumentError(`bad filter ${JSON.stringify(f)}`, { hint: 'use --filter key=value, e.g. --filter status=exited' });
    (out[f.slice(0, i)] ??= []).push(f.slice(i + 1));
  }
  return out;
}
