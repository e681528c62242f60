import {
  BerthError,
  ErrorCode,
  errorFromCode,
  InternalError,
  toBerthError,
} from '../../volumes/shared/errors';

/**
 * The one table from error class to HTTP status (moby's errdefs → HTTP, in one place).
 * The client inverts it: a body with a `code` is rebuilt as the same class; a body from
 * a plain Docker daemon (no `code`) is classified by status.
 */
export const statusByCode: Record<ErrorCode, number> = {
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 412,
  UNAVAILABLE: 503,
  UNIMPLEMENTED: 501,
  UNAUTHENTICATED: 401,
  INTERNAL: 500,
};

const codeByStatus: Record<number, ErrorCode> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  412: 'FAILED_PRECONDITION',
  503: 'UNAVAILABLE',
  501: 'UNIMPLEMENTED',
  500: 'INTERNAL',
};

/**
 * JavaScript's own errors (a TypeError from `x.split` on a number, a stack overflow) are
 * bugs or unchecked input, and their words mean nothing to a client: they are answered as a
 * plain INTERNAL with a reference, and the details stay in the daemon's log.
 */
const JS_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

export function isJavaScriptInternal(e: unknown): boolean {
  if (e instanceof BerthError) return e.code === 'INTERNAL' && e.cause !== undefined && isJavaScriptInternal(e.cause);
  if (!(e instanceof Error)) return e !== undefined && e !== null && typeof e !== 'string';
  return JS_ERRORS.some((C) => e instanceof C) && typeof (e as NodeJS.ErrnoException).code !== 'string';
}

let refs = 0;

/** Server side: the status and the JSON body for anything thrown by a handler (`ref`: set when internals were hidden). */
export function errorResponse(e: unknown): { status: number; body: { message: string; code: ErrorCode; hint?: string; exitCode?: number }; ref?: string } {
  if (isJavaScriptInternal(e)) {
    const ref = `${process.pid.toString(36)}-${(++refs).toString(36)}`;
    const err = new InternalError(`berth hit an internal error (ref ${ref})`, { hint: `the daemon's log has the details under ref ${ref}; please report it with the request that caused it` });
    return { status: 500, body: err.toJSON(), ref };
  }
  const err: BerthError = toBerthError(e);
  // A start that failed for the command (126 not executable, 127 not found) carries the
  // exit code `docker run` must end with.
  const exitCode = (e as { exitCode?: unknown })?.exitCode;
  return { status: statusByCode[err.code], body: { ...err.toJSON(), ...(typeof exitCode === 'number' ? { exitCode } : {}) } };
}

/** Client side: rebuild the error from a response. */
export function errorFromResponse(status: number, body: unknown): BerthError {
  const b = (body ?? {}) as { message?: unknown; code?: unknown; hint?: unknown; exitCode?: unknown };
  const message = typeof b.message === 'string' ? b.message : `daemon answered HTTP ${status}`;
  const code = typeof b.code === 'string' ? b.code : codeByStatus[status] ?? 'INTERNAL';
  const err = errorFromCode(code, message, typeof b.hint === 'string' ? b.hint : undefined);
  if (typeof b.exitCode === 'number') Object.assign(err, { exitCode: b.exitCode });
  return err;
}
