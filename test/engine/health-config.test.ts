import test from 'ava';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { applyChanges, serializeConfig } from '../../src/images/config';
import { checkHealthConfig, mergeHealthConfig, probeCommand } from '../../src/engine/health';
import { formatGoDuration, goDuration } from '../../src/units';
import { healthcheckFromFlags } from '../../src/cli/health-flags';

/** The pure parts of health checks: HEALTHCHECK changes, the create body's checks, the merge, the CLI flags. */

const S = 1e9;

test('HEALTHCHECK as --change reads the builder\'s forms: flags, shell form, JSON form, NONE', (t) => {
  t.deepEqual(applyChanges({}, ['HEALTHCHECK --interval=5s --timeout=1m30s --start-period=500ms --retries=4 CMD redis-cli ping || exit 1']).Healthcheck, {
    Test: ['CMD-SHELL', 'redis-cli ping || exit 1'],
    Interval: 5 * S,
    Timeout: 90 * S,
    StartPeriod: 0.5 * S,
    Retries: 4,
  });
  t.deepEqual(applyChanges({}, ['HEALTHCHECK CMD ["redis-cli", "ping"]']).Healthcheck, { Test: ['CMD', 'redis-cli', 'ping'] });
  t.deepEqual(applyChanges({ Healthcheck: { Test: ['CMD', 'x'] } }, ['HEALTHCHECK NONE']).Healthcheck, { Test: ['NONE'] });
  for (const bad of ['HEALTHCHECK', 'HEALTHCHECK --interval=5 CMD true', 'HEALTHCHECK --retries=0 CMD true', 'HEALTHCHECK --every=5s CMD true', 'HEALTHCHECK NONE now', 'HEALTHCHECK --interval=5s NONE', 'HEALTHCHECK RUN true', 'HEALTHCHECK CMD']) {
    t.throws(() => applyChanges({}, [bad]), { instanceOf: InvalidArgumentError }, bad);
  }
});

test("an image config keeps its Healthcheck when written (after Docker's OCI fields)", (t) => {
  const text = serializeConfig({
    architecture: 'amd64',
    os: 'linux',
    config: { StopSignal: 'SIGINT', Healthcheck: { Test: ['CMD', 'true'], Interval: S, Retries: 2 } },
    rootfs: { type: 'layers', diff_ids: [] },
  });
  t.regex(text, /"StopSignal":"SIGINT","Healthcheck":\{"Test":\["CMD","true"\],"Interval":1000000000,"Retries":2\}/);
});

test('a create body\'s Healthcheck: checked, merged over the image\'s field by field, run as Docker runs it', (t) => {
  t.is(checkHealthConfig(null), undefined);
  t.deepEqual(checkHealthConfig({ Test: ['CMD-SHELL', 'true'], Interval: 0, Retries: 0 }), { Test: ['CMD-SHELL', 'true'] });
  for (const bad of [[], { Test: 'true' }, { Test: ['WGET', 'x'] }, { Test: ['CMD-SHELL', ''] }, { Test: ['NONE', 'x'] }, { Interval: 999 }, { Timeout: -1 }, { Retries: 1.5 }, { Retries: -2 }, { Every: 1 }]) {
    t.throws(() => checkHealthConfig(bad), { instanceOf: InvalidArgumentError }, JSON.stringify(bad));
  }
  const image = { Test: ['CMD', 'check'], Interval: 5 * S, Retries: 7 };
  t.deepEqual(mergeHealthConfig(undefined, image), image);
  t.deepEqual(mergeHealthConfig({ Interval: S }, image), { Test: ['CMD', 'check'], Interval: S, Retries: 7 });
  t.deepEqual(mergeHealthConfig({ Test: ['NONE'] }, image), { Test: ['NONE'], Interval: 5 * S, Retries: 7 });
  t.deepEqual(probeCommand({ Test: ['CMD', 'redis-cli', 'ping'] }), ['redis-cli', 'ping']);
  t.deepEqual(probeCommand({ Test: ['CMD-SHELL', 'redis-cli ping'] }), ['/bin/sh', '-c', 'redis-cli ping']);
  t.deepEqual(probeCommand({ Test: ['CMD-SHELL', 'redis-cli ping'] }, ['/bin/ash', '-eo', 'pipefail', '-c']), ['/bin/ash', '-eo', 'pipefail', '-c', 'redis-cli ping'], 'Config.Shell');
  t.is(probeCommand({ Test: ['NONE'] }), undefined);
  t.is(probeCommand({ Test: [] }), undefined);
});

test("the CLI's --health-* flags and --no-healthcheck build the body as the docker CLI does", (t) => {
  t.is(healthcheckFromFlags({}), undefined);
  t.deepEqual(healthcheckFromFlags({ healthCmd: 'curl -f localhost', healthInterval: '2s', healthRetries: '5', healthStartPeriod: '1m', healthTimeout: '300ms' }), {
    Test: ['CMD-SHELL', 'curl -f localhost'],
    Interval: 2 * S,
    Timeout: 0.3 * S,
    StartPeriod: 60 * S,
    Retries: 5,
  });
  t.deepEqual(healthcheckFromFlags({ healthInterval: '10s' }), { Interval: 10 * S }, 'no command: the image\'s Test is kept');
  t.deepEqual(healthcheckFromFlags({ healthcheck: false }), { Test: ['NONE'] });
  for (const bad of [{ healthcheck: false, healthCmd: 'true' }, { healthInterval: '-1s' }, { healthTimeout: '10' }, { healthRetries: '-1' }, { healthRetries: 'x' }]) {
    t.throws(() => healthcheckFromFlags(bad), { instanceOf: InvalidArgumentError }, JSON.stringify(bad));
  }
});

test("durations read and written as Go's time.Duration", (t) => {
  t.is(goDuration('1h30m'), 5_400_000);
  t.is(goDuration('1.5s'), 1500);
  t.is(goDuration('0'), 0);
  t.is(goDuration('10'), undefined);
  t.is(formatGoDuration(30 * S), '30s');
  t.is(formatGoDuration(0.5 * S), '500ms');
  t.is(formatGoDuration(90 * S), '1m30s');
  t.is(formatGoDuration(3600 * S), '1h0m0s');
  t.is(formatGoDuration(1.25 * S), '1.25s');
  t.is(formatGoDuration(0), '0s');
});
