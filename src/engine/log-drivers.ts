import { InvalidArgumentError, UnimplementedError } from '../../volumes/shared/errors';
import type { HostConfig } from './service';
import { parseSize } from '../units';

/**
 * Logging drivers as Docker 20.10 reads HostConfig.LogConfig. berth-monitor writes every
 * container's output as json-file lines (it is also what `attach` follows); the driver
 * decides how much of it is kept and whether `logs` may read it:
 *
 *   json-file  Docker's default: max-size (none: unlimited), max-file (1; without
 *              max-size it has nothing to rotate, so it is accepted and has no effect).
 *   local      Docker's rotating local driver, with its defaults max-size=20m, max-file=5.
 *              berth keeps the files as json lines, uncompressed, so compress=true is refused.
 *   none       no log: `logs` answers as Docker does ("configured logging driver does not
 *              support reading", 501). Only a small rolling buffer (2 x 512 KiB) is
 *              kept, because `attach` follows it; nothing reads it back.
 *
 * Any other driver is refused with Docker's words for a driver it does not have. The
 * driver-independent options `mode` (blocking only: the monitor never drops output) and
 * `max-buffer-size` (non-blocking only) follow Docker's checks.
 */

export type LogDriver = 'json-file' | 'local' | 'none';

export const LOG_DRIVERS: readonly LogDriver[] = ['json-file', 'local', 'none'];

/** The json-file options Docker knows and berth does not honour (json-file only writes the output). */
const JSON_FILE_UNSUPPORTED = ['compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag'];

/** The rolling buffer a `none` container keeps for attach. */
const NONE_BUFFER = { maxSize: 512 << 10, maxFiles: 2 };

const HINT = 'use --log-driver json-file (the default), local or none';

/** Check LogConfig as Docker validates it at create; the config to record. */
export function checkLogConfig(lc: HostConfig['LogConfig']): { Type: LogDriver; Config: Record<string, string> } {
  const type = lc?.Type || 'json-file';
  const cfg: Record<string, string> = { ...(lc?.Config ?? {}) };
  for (const [k, v] of Object.entries(cfg)) {
    if (typeof v !== 'string') throw new InvalidArgumentError(`log opt '${k}' must be a string`, { hint: 'give log options as strings, e.g. max-size=10m' });
  }
  if (!(LOG_DRIVERS as readonly string[]).includes(type)) {
    throw new InvalidArgumentError(`logger: no log driver named '${type}' is registered`, { hint: HINT });
  }
  const driver = type as LogDriver;
  if (driver === 'none') return { Type: driver, Config: cfg }; // Docker checks nothing for none
  const mode = cfg.mode ?? '';
  if (mode !== '' && mode !== 'blocking' && mode !== 'non-blocking') {
    throw new InvalidArgumentError(`logger: logging mode not supported: ${mode}`, { hint: 'mode is blocking or non-blocking' });
  }
  if (mode === 'non-blocking') {
    throw new InvalidArgumentError('logging mode non-blocking is not supported by berth', { hint: "drop --log-opt mode: berth's log writer never drops output (blocking)" });
  }
  if (cfg['max-buffer-size'] !== undefined) {
    throw new InvalidArgumentError('max-buffer-size is only valid with mode=non-blocking', { hint: 'drop --log-opt max-buffer-size' });
  }
  for (const k of Object.keys(cfg)) {
    if (k === 'mode' || k === 'max-size' || k === 'max-file') continue;
    if (driver === 'local' && k === 'compress') continue;
    if (driver === 'json-file' && JSON_FILE_UNSUPPORTED.includes(k)) {
      throw new InvalidArgumentError(`log opt '${k}' of the json-file driver is not supported by berth`, { hint: 'berth writes the output only; drop the option' });
    }
    throw new InvalidArgumentError(`unknown log opt '${k}' for ${driver} log driver`, { hint: 'the options are max-size and max-file' + (driver === 'local' ? ' (and compress=false)' : '') });
  }
  if (driver === 'local' && cfg.compress !== undefined) {
    const c = cfg.compress.toLowerCase();
    if (!['true', 'false', '1', '0'].includes(c)) throw new InvalidArgumentError(`invalid compress ${JSON.stringify(cfg.compress)}`, { hint: 'compress is true or false' });
    if (c === 'true' || c === '1') throw new InvalidArgumentError('compress=true is not supported by berth: it keeps local logs uncompressed', { hint: 'use --log-opt compress=false, or leave it out' });
  }
  const out = { Type: driver, Config: cfg };
  logLimits(out);
  return out;
}

/** How much of the output the monitor keeps: max bytes per file (-1: unlimited) and files. */
export function logLimits(lc: HostConfig['LogConfig']): { maxSize: number; maxFiles: number } {
  const driver = lc?.Type || 'json-file';
  if (driver === 'none') return NONE_BUFFER;
  const local = driver === 'local';
  const cfg = lc?.Config ?? {};
  const given = (k: string) => cfg[k] !== undefined && cfg[k] !== '';
  let maxSize = given('max-size') ? parseSize(cfg['max-size'], 'max-size') : local ? 20 << 20 : -1;
  if (local && maxSize <= 0) maxSize = 20 << 20;
  let maxFiles = local ? 5 : 1;
  if (given('max-file')) {
    maxFiles = Number(cfg['max-file']);
    if (!Number.isInteger(maxFiles) || maxFiles < 1) {
      throw new InvalidArgumentError(`invalid max-file ${JSON.stringify(cfg['max-file'])}: max-file cannot be less than 1`, { hint: 'give a whole number of files, 1 or more' });
    }
  }
  // Without a size nothing rotates, so max-file has no effect (Docker accepts it).
  return { maxSize, maxFiles: maxSize > 0 ? maxFiles : 1 };
}

/** `logs` (and attach's `logs=1`) of a container: refused for `none`, as Docker refuses it. */
export function checkReadable(lc: HostConfig['LogConfig']): void {
  if (lc?.Type === 'none') {
    throw new UnimplementedError('configured logging driver does not support reading', { hint: 'the container was made with --log-driver none: no log is kept' });
  }
}
