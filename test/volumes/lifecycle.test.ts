import test from 'ava';
import { FailedPreconditionError } from '../../volumes/shared/errors';
import { Lifecycle } from '../../volumes/shared/lifecycle';

test('close runs the release once: a second close, during or after it, waits for the same one', async (t) => {
  const life = new Lifecycle('thing', 'open it again');
  let releases = 0;
  let finish!: () => void;
  const release = () => {
    releases++;
    return new Promise<void>((r) => (finish = r));
  };
  const first = life.close(release);
  const second = life.close(release);
  t.true(life.closed, 'closed from the first call, before the release ends');
  finish();
  await Promise.all([first, second]);
  await life.close(release);
  t.is(releases, 1);
});

test('operations after close are refused with FAILED_PRECONDITION and a hint', async (t) => {
  const life = new Lifecycle('thing', 'open it again');
  t.notThrows(() => life.check());
  await life.close();
  const e = t.throws(() => life.check(), { instanceOf: FailedPreconditionError, code: 'FAILED_PRECONDITION' });
  t.is(e?.hint, 'open it again');
  t.like(life.error(), { code: 'FAILED_PRECONDITION' });
});

test('a release that fails is thrown, keeps refusing, and the next close tries it again', async (t) => {
  const life = new Lifecycle('pool', 'open the driver again');
  let tries = 0;
  const release = async () => {
    if (++tries === 1) throw new Error('busy');
  };
  await t.throwsAsync(life.close(release), { message: 'busy' });
  t.throws(() => life.check(), { code: 'FAILED_PRECONDITION' });
  await life.close(release);
  t.is(tries, 2);
  await life.close(release);
  t.is(tries, 2);
});
