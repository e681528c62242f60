/**
 * The one name rule for volumes and their snapshots: Docker's volume name rule,
 * `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, at most 255 bytes (a name is a directory name on disk).
 * It rules out, by construction, every name that could climb or hide: '', 'x' (too short),
 * '.', '..', '.v', '/v', './v', names with NUL or '/'.
 */
import { InvalidArgumentError } from '../shared/errors';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
export const MAX_NAME_BYTES = 255;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name) && Buffer.byteLength(name) <= MAX_NAME_BYTES;
}

/** INVALID_ARGUMENT unless `name` follows the rule. `what` is 'volume' or 'snapshot'. */
export function checkName(name: unknown, what: 'volume' | 'snapshot'): string {
  if (isValidName(name)) return name;
  const shown = typeof name === 'string' ? JSON.stringify(name.length > 80 ? name.slice(0, 80) + '…' : name) : String(name);
  throw new InvalidArgumentError(`invalid ${what} name ${shown}`, {
    hint: `a ${what} name is 2 to 255 characters from [a-zA-Z0-9_.-] and starts with a letter or digit`,
  });
}
