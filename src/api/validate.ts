import { z } from 'zod';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { LIMITS } from './limits';

/**
 * Request bodies and queries are checked against a schema (zod) before any handler runs,
 * so a handler only ever sees the types it was written for. The schemas say what the Docker
 * Engine API v1.41 says: Go's decoder refuses a wrong type and reads `null` as "not set", so
 * every field here is nullable, and unknown members pass (the handlers' own tables refuse
 * the fields berth does not honour, by name). A refusal is INVALID_ARGUMENT naming the
 * field's path (`HostConfig.Binds[0]`) with a hint.
 *
 * The building blocks below are the common field shapes, with their bounds.
 */

export type Schema = z.ZodType;

/** A field's hints: by dotted path without indices (`HostConfig.Binds`), the longest match wins. */
export type Hints = Readonly<Record<string, string>>;

const DEFAULT_HINT = 'see the Docker Engine API v1.41 for the field\'s type; null or leaving it out means "not set"';

/** Check `value` against `schema`; throw INVALID_ARGUMENT for the first problem found. */
export function validate<T>(schema: Schema, value: unknown, what: string, hints: Hints = {}): T {
  const r = schema.safeParse(value);
  if (r.success) return value as T;
  const issue = firstIssue(r.error.issues);
  const where = fieldPath(issue.path);
  const message = issue.message.replace(/^Invalid input: /, '');
  throw new InvalidArgumentError(`invalid ${what}: ${where ? `${where}: ` : ''}${message}`, { hint: hintFor(issue.path, hints) });
}

/** A union's own issue says only "invalid input"; the deepest issue under it says which member and why. */
function firstIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  let best = issues[0];
  for (const i of issues) if (i.path.length > best.path.length) best = i;
  return best;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(String(p).length > 60 ? String(p).slice(0, 60) + '…' : String(p))}]`;
  }
  return out;
}

function hintFor(path: readonly PropertyKey[], hints: Hints): string {
  const names = path.filter((p): p is string => typeof p === 'string');
  for (let n = names.length; n > 0; n--) {
    const h = hints[names.slice(0, n).join('.')];
    if (h) return h;
  }
  return DEFAULT_HINT;
}

// ---- building blocks ----

const noNul = (s: string) => !s.includes('\0');

/** A string up to `max` characters, without NUL (the kernel cuts a C string there). */
export function str(max: number = LIMITS.shortString): z.ZodString {
  return z.string().max(max, { message: `longer than ${max} characters` }).refine(noNul, { message: 'contains a NUL byte' }) as unknown as z.ZodString;
}

/** A whole number in [min, max]. Go's int64 fields: JSON numbers that are integers. */
export function int(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): z.ZodNumber {
  return z
    .number()
    .refine((n) => Number.isInteger(n), { message: 'must be a whole number', abort: true })
    .refine((n) => n >= min && n <= max, { message: `out of range: give a whole number from ${min} to ${max}` }) as unknown as z.ZodNumber;
}

export const bool = z.boolean();

/** A list of strings (nullable elements are not: Go's []string refuses a null item as a string). */
export function strList(count: number = LIMITS.listCount, max: number = LIMITS.shortString) {
  return z.array(str(max)).max(count, { message: `more than ${count} items` });
}

/** Docker's StrSlice (Cmd, Entrypoint, Shell): one string or a list of them. */
export function strSlice(count: number = LIMITS.argCount, max: number = LIMITS.envEntryBytes) {
  return z.union([str(max), strList(count, max)], { message: 'must be a string or a list of strings' });
}

/** A map of strings (Labels, Options, Sysctls, ...), bounded in entries. */
export function strMap(count: number = LIMITS.listCount, keyMax: number = LIMITS.shortString, valMax: number = LIMITS.shortString) {
  return z
    .record(str(keyMax), str(valMax))
    .refine((m) => Object.keys(m).length <= count, { message: `more than ${count} entries` });
}

/** A bounded map of anything-goes objects (ExposedPorts, Volumes: `{"/data": {}}`). */
export function setMap(count: number, keyMax: number = LIMITS.pathBytes) {
  return z
    .record(str(keyMax), z.union([z.looseObject({}), z.null()], { message: 'must be an object ({})' }))
    .refine((m) => Object.keys(m).length <= count, { message: `more than ${count} entries` });
}

/** An object with these fields (each nullable and optional), unknown members passed over as Go's decoder does. */
export function obj<S extends Record<string, z.ZodType>>(shape: S) {
  const nullable: Record<string, z.ZodType> = {};
  for (const [k, v] of Object.entries(shape)) nullable[k] = v.nullish();
  return z.looseObject(nullable);
}
