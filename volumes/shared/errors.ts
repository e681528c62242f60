/**
 * berth's error classes. Every error that crosses a module boundary is one of these,
 * with a literal `code` and, where the user can do something about it, a `hint` that
 * says what. They live in volumes/shared/, the bottom folder that imports nothing, so the
 * storage core, the engine, the API and the CLI all use the same classes.
 * The HTTP mapping lives in exactly one table: src/api/errors.ts.
 *
 * Tests assert the class or the code, never the message text.
 */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE'
  | 'UNIMPLEMENTED'
  | 'UNAUTHENTICATED'
  | 'INTERNAL';

export abstract class BerthError extends Error {
  abstract readonly code: ErrorCode;
  readonly hint?: string;
  constructor(message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    if (opts.hint) this.hint = opts.hint;
  }
  toJSON(): { message: string; code: ErrorCode; hint?: string } {
    return { message: this.message, code: this.code, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** The thing named does not exist. */
export class NotFoundError extends BerthError {
  readonly code = 'NOT_FOUND' as const;
}
/** Something with that name or key is already there. */
export class AlreadyExistsError extends BerthError {
  readonly code = 'ALREADY_EXISTS' as const;
}
/** The request clashes with the current state of another object (in use, has children). */
export class ConflictError extends BerthError {
  readonly code = 'CONFLICT' as const;
}
/** The request itself is malformed: bad name, bad path, hostile tarball, bad flag. */
export class InvalidArgumentError extends BerthError {
  readonly code = 'INVALID_ARGUMENT' as const;
}
/** The system is not in a state where this can work (missing tool, wrong kind of object). */
export class FailedPreconditionError extends BerthError {
  readonly code = 'FAILED_PRECONDITION' as const;
}
/** A service berth needs does not answer (no daemon, root locked by another daemon). */
export class UnavailableError extends BerthError {
  readonly code = 'UNAVAILABLE' as const;
}
/** The object is fine, but what is asked of it is not something it does (Docker's NotImplemented: `logs` of a container logging to `none`). */
export class UnimplementedError extends BerthError {
  readonly code = 'UNIMPLEMENTED' as const;
}
/** The caller's credentials are missing or refused (a registry's 401; Docker's errdefs.Unauthorized). */
export class UnauthenticatedError extends BerthError {
  readonly code = 'UNAUTHENTICATED' as const;
}
/** A bug or an unexpected failure underneath (a syscall, a tool that crashed). */
export class InternalError extends BerthError {
  readonly code = 'INTERNAL' as const;
}

const byCode: Record<ErrorCode, new (m: string, o?: { hint?: string }) => BerthError> = {
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: AlreadyExistsError,
  CONFLICT: ConflictError,
  INVALID_ARGUMENT: InvalidArgumentError,
  FAILED_PRECONDITION: FailedPreconditionError,
  UNAVAILABLE: UnavailableError,
  UNIMPLEMENTED: UnimplementedError,
  UNAUTHENTICATED: UnauthenticatedError,
  INTERNAL: InternalError,
};

/** Rebuild an error from its code (the client side of the wire). */
export function errorFromCode(code: string, message: string, hint?: string): BerthError {
  const C = byCode[code as ErrorCode] ?? InternalError;
  return new C(message, hint ? { hint } : {});
}

export function isBerthError(e: unknown): e is BerthError {
  return e instanceof BerthError;
}

/** Wrap anything thrown into a BerthError, keeping BerthErrors as they are. */
export function toBerthError(e: unknown): BerthError {
  if (e instanceof BerthError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err && err.code === 'ENOSPC') {
    return new FailedPreconditionError(`no space left on device: ${err.message}`, {
      hint: 'free space on the filesystem that holds the berth data root',
      cause: e,
    });
  }
  return new InternalError(err?.message ?? String(e), { cause: e });
}
