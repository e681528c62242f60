import {
  BerthError,
  ErrorCode,
  errorFromCode,
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

/** Server side: the status and the JSON body for anything thrown by a handler. */
export function errorResponse(e: unknown): { status: number; body: { message: string; code: ErrorCode; hint?: string; exitCode?: number } } {
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
