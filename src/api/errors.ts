import {
  BerthError,
  ErrorCode,
  errorFromCode,
  toBerthError,
} from '../../volumes/errors';

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
  INTERNAL: 500,
};

const codeByStatus: Record<number, ErrorCode> = {
  400: 'INVALID_ARGUMENT',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  412: 'FAILED_PRECONDITION',
  503: 'UNAVAILABLE',
  500: 'INTERNAL',
};

/** Server side: the status and the JSON body for anything thrown by a handler. */
export function errorResponse(e: unknown): { status: number; body: { message: string; code: ErrorCode; hint?: string } } {
  const err: BerthError = toBerthError(e);
  return { status: statusByCode[err.code], body: err.toJSON() };
}

/** Client side: rebuild the error from a response. */
export function errorFromResponse(status: number, body: unknown): BerthError {
  const b = (body ?? {}) as { message?: unknown; code?: unknown; hint?: unknown };
  const message = typeof b.message === 'string' ? b.message : `daemon answered HTTP ${status}`;
  const code = typeof b.code === 'string' ? b.code : codeByStatus[status] ?? 'INTERNAL';
  return errorFromCode(code, message, typeof b.hint === 'string' ? b.hint : undefined);
}
