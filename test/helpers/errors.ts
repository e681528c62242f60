import type { ExecutionContext } from 'ava';
import { errorFromCode, type ErrorCode } from '../../volumes/shared/errors';

/**
 * Assert that `p` rejects with berth's error class for `code` and that code — the class
 * errorFromCode gives, which is what the socket client rebuilds — never the message text.
 */
export async function rejects(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode, what?: string): Promise<void> {
  const cls = errorFromCode(code, '').constructor as new (...args: never[]) => Error;
  await t.throwsAsync(p, { instanceOf: cls, code }, what);
}
