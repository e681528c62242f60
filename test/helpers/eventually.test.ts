import test from 'ava';
import { eventually, EventuallyTimeout } from './eventually';

test('eventually returns the first truthy value the condition gives', async (t) => {
  let n = 0;
  const v = await eventually(() => (++n >= 3 ? { n } : false), { interval: 1 });
  t.deepEqual(v, { n: 3 });
});

test('eventually treats a throw as not yet', async (t) => {
  let n = 0;
  const v = await eventually(
    async () => {
      if (++n < 3) throw new Error('not listening yet');
      return 'up';
    },
    { interval: 1 },
  );
  t.is(v, 'up');
});

test('eventually fails naming what was awaited and the last poll', async (t) => {
  const e = await t.throwsAsync(eventually(() => { throw new Error('ECONNREFUSED'); }, { timeout: 20, interval: 5, message: 'the daemon to answer' }), {
    instanceOf: EventuallyTimeout,
  });
  t.regex(e!.message, /waiting for the daemon to answer/);
  t.regex(e!.message, /ECONNREFUSED/);
});
