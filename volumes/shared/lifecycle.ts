/**
 * The lifecycle every long-lived service shares — the snapshotter, the volume drivers and
 * their pool, the image store, the volume service, the container engine: open, then
 * closed, once.
 *
 * - From the first close() on, `check()` refuses new operations with FAILED_PRECONDITION
 *   (`error()` gives the same error, for a rejected promise or a stream).
 * - close() runs the owner's release once. A close() while it runs waits for the same
 *   release; a close() after it succeeded does nothing. So close twice is harmless.
 * - A release that fails (a busy pool) is thrown, the service keeps refusing, and a later
 *   close() tries the release again.
 *
 *   private readonly life = new Lifecycle('image store', 'open the image store again');
 *   async inspect(ref) { this.life.check(); ... }
 *   close() { return this.life.close(async () => { ...release... }); }
 */
import { FailedPreconditionError } from './errors';

export class Lifecycle {
  private refusing = false;
  private released = false;
  private releasing?: Promise<void>;

  /** `what` names the service in the refusal ("the <what> is closed"); `hint` says what to do. */
  constructor(
    private readonly what: string,
    private readonly hint: string,
  ) {}

  /** True from the first close() on. */
  get closed(): boolean {
    return this.refusing;
  }

  /** Refuse an operation once close() has been called. */
  check(): void {
    if (this.refusing) throw this.error();
  }

  /** The error an operation after close gets. */
  error(): FailedPreconditionError {
    return new FailedPreconditionError(`the ${this.what} is closed`, { hint: this.hint });
  }

  close(release: () => Promise<void> = async () => undefined): Promise<void> {
    this.refusing = true;
    if (this.released) return Promise.resolve();
    this.releasing ??= release().then(
      () => {
        this.released = true;
      },
      (e: unknown) => {
        this.releasing = undefined; // the next close() tries again
        throw e;
      },
    );
    return this.releasing;
  }
}
