import test from 'ava';
import { BerthError } from '../../volumes/shared/errors';
import { TestDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

/**
 * Health checks through the real docker CLI: `run --health-*`, State.Health in inspect,
 * `health_status` events, `(healthy)` in ps and `--filter health=`, an image's HEALTHCHECK
 * and `--no-healthcheck`, a check killed at its timeout, and checks that go on after the
 * daemon restarts (live-restore). One daemon, tests in order: the last one restarts it.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

interface Health {
  Status: string;
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}

async function health(name: string): Promise<Health | null> {
  const r = await d.docker(['inspect', '-f', '{{json .State.Health}}', name]);
  if (r.code !== 0) throw new Error(`inspect ${name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Health | null;
}

/** Poll inspect until the container's health status is `want` (generous: the machine is shared). */
async function waitHealth(name: string, want: string, ms = 60_000): Promise<Health> {
  return eventually(async () => {
    const h = await health(name);
    return h?.Status === want && h;
  }, { timeout: ms, interval: 200, message: `${name} to become ${want}` });
}

async function docker(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

let witnesses = 0;
/**
 * Wait out the time in which a 300 ms check would have run `n` times — seen, not slept: a
 * witness container checked every 300 ms runs until it has `n` probes that began after the
 * call. "No probe ran" is then a claim about a window that really passed, on any load.
 */
async function probeWindow(n = 3): Promise<void> {
  const from = Date.now();
  const name = `witness-${++witnesses}`;
  await docker(['run', '-d', '--name', name, '--health-cmd', 'true', '--health-interval', '300ms', 'busybox', 'sleep', '1000']);
  try {
    await eventually(async () => ((await health(name))?.Log ?? []).filter((p) => Date.parse(p.Start) >= from).length >= n, {
      timeout: 120_000,
      message: `${n} probes of the witness container`,
    });
  } finally {
    await docker(['rm', '-f', name]);
  }
}

test.serial('docker run --health-cmd: starting, healthy, unhealthy, with the results in inspect, events and ps', async (t) => {
  const since = Math.floor(Date.now() / 1000) - 1;
  // Failures inside the start period do not count: it stays starting until /tmp/ok exists.
  await docker(['run', '-d', '--name', 'web', '--health-cmd', 'cat /tmp/ok', '--health-interval', '300ms', '--health-retries', '2', '--health-start-period', '10m', 'busybox', 'sleep', '1000']);
  const cfg = JSON.parse(await docker(['inspect', '-f', '{{json .Config.Healthcheck}}', 'web']));
  t.deepEqual(cfg, { Test: ['CMD-SHELL', 'cat /tmp/ok'], Interval: 300_000_000, StartPeriod: 600_000_000_000, Retries: 2 });
  t.regex(await docker(['ps', '--filter', 'name=web', '--format', '{{.Status}}']), /^Up .* \(health: starting\)\n$/);
  t.is((await docker(['ps', '-q', '--filter', 'health=starting'])).trim().length, 12);

  // Failing probes are recorded, but within the start period the streak stays 0.
  let h = await eventually(async () => {
    const x = await health('web');
    return (x?.Log.length ?? 0) >= 2 && x;
  }, { timeout: 60_000, interval: 200, message: 'two failing probes recorded' });
  t.is(h?.Status, 'starting');
  t.is(h?.FailingStreak, 0);
  t.true(h!.Log.length >= 2);
  t.is(h!.Log[0].ExitCode, 1);
  t.regex(h!.Log[0].Output, /No such file or directory/);
  t.true(Date.parse(h!.Log[0].End) >= Date.parse(h!.Log[0].Start));

  await docker(['exec', 'web', 'touch', '/tmp/ok']);
  h = await waitHealth('web', 'healthy');
  t.is(h.FailingStreak, 0);
  t.is(h.Log[h.Log.length - 1].ExitCode, 0);
  t.regex(await docker(['ps', '--filter', 'name=web', '--format', '{{.Status}}']), /^Up .* \(healthy\)\n$/);
  t.regex(await docker(['ps', '--filter', 'health=healthy', '--format', '{{.Names}}']), /^web$/m);
  t.notRegex(await docker(['ps', '--filter', 'health=unhealthy', '--format', '{{.Names}}']), /^web$/m);

  // Past the start period (it was healthy once), failures count: two make it unhealthy.
  await docker(['exec', 'web', 'rm', '/tmp/ok']);
  h = await waitHealth('web', 'unhealthy');
  t.true(h.FailingStreak >= 2, `streak ${h.FailingStreak}`);
  t.true(h.Log.length <= 5, 'only the last 5 results are kept');
  t.regex(await docker(['ps', '--filter', 'health=unhealthy', '--format', '{{.Names}}']), /^web$/m);
  t.regex(await docker(['ps', '--filter', 'name=web', '--format', '{{.Status}}']), /\(unhealthy\)/);

  const until = Math.ceil(Date.now() / 1000) + 1;
  const ev = await docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=web', '--filter', 'event=health_status', '--format', '{{.Action}}']);
  t.deepEqual(ev.trim().split('\n'), ['health_status: healthy', 'health_status: unhealthy'], 'one event per change of status');

  // Stopped, checks end and the status is unhealthy (Docker's "monitor stopped").
  await docker(['stop', '-t', '1', 'web']);
  const stoppedAt = Date.now();
  const after = await health('web');
  t.is(after?.Status, 'unhealthy');
  await probeWindow();
  // The Log keeps only the last 5, so its length proves nothing: no probe may have begun after
  // the stop (the one in flight at the stop may land; it began before).
  const late = (await health('web'))!.Log.filter((p) => Date.parse(p.Start) > stoppedAt);
  t.deepEqual(late, [], 'no probe runs on a stopped container');
  await docker(['rm', 'web']);
});

test.serial('a check that outlives its timeout is killed and counts as a failure', async (t) => {
  await docker(['run', '-d', '--name', 'slow', '--health-cmd', 'exec sleep 777', '--health-timeout', '500ms', '--health-interval', '300ms', '--health-retries', '1', 'busybox', 'sleep', '1000']);
  const h = await waitHealth('slow', 'unhealthy');
  const last = h.Log[h.Log.length - 1];
  t.is(last.ExitCode, -1);
  t.is(last.Output, 'Health check exceeded timeout (500ms)');
  // The timed-out probes are gone, not left running in the container (at most the one in
  // flight): leaked ones would pile up, one every 800 ms, and this would never hold.
  let top = '';
  await eventually(async () => ((top = await docker(['top', 'slow'])).match(/sleep 777/g) ?? []).length <= 1, { message: 'at most one probe running' }).catch(() => undefined);
  t.true((top.match(/sleep 777/g) ?? []).length <= 1, top);
  await docker(['rm', '-f', 'slow']);
});

test.serial("an image's HEALTHCHECK runs; --no-healthcheck turns it off; output is kept to 4096 bytes", async (t) => {
  await docker(['run', '-d', '--name', 'base', 'busybox', 'sleep', '1000']);
  await docker(['commit', '--change', 'HEALTHCHECK --interval=300ms --retries=1 CMD ["sh", "-c", "head -c 5000 /dev/zero | tr \\"\\\\0\\" x"]', 'base', 'hc-image']);
  await docker(['rm', '-f', 'base']);
  t.deepEqual(JSON.parse(await docker(['image', 'inspect', '-f', '{{json .Config.Healthcheck}}', 'hc-image'])), {
    Test: ['CMD', 'sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" x'],
    Interval: 300_000_000,
    Retries: 1,
  });

  await docker(['run', '-d', '--name', 'inherits', 'hc-image']);
  const h = await waitHealth('inherits', 'healthy');
  t.is(h.Log[0].Output, 'x'.repeat(4096) + '...', "Docker's truncation");

  await docker(['run', '-d', '--name', 'none', '--no-healthcheck', 'hc-image']);
  // NONE wins; the rest is merged from the image's as moby merges it.
  t.deepEqual(JSON.parse(await docker(['inspect', '-f', '{{json .Config.Healthcheck.Test}}', 'none'])), ['NONE']);
  await probeWindow();
  t.is(await health('none'), null, 'no State.Health without checks');
  t.regex(await docker(['ps', '--filter', 'name=none', '--format', '{{.Status}}']), /^Up [^(]*\n$/);
  t.regex(await docker(['ps', '--filter', 'health=none', '--format', '{{.Names}}']), /^none$/m);
  await docker(['rm', '-f', 'inherits', 'none']);
  await docker(['rmi', 'hc-image']);
});

test.serial('pause ends the checks (unhealthy, as Docker shows it); unpause resumes them', async (t) => {
  await docker(['run', '-d', '--name', 'paused', '--health-cmd', 'true', '--health-interval', '300ms', 'busybox', 'sleep', '1000']);
  await waitHealth('paused', 'healthy');
  await docker(['pause', 'paused']);
  const pausedAt = Date.now();
  const h = await health('paused');
  t.is(h?.Status, 'unhealthy');
  await probeWindow();
  const late = (await health('paused'))!.Log.filter((p) => Date.parse(p.Start) > pausedAt);
  t.deepEqual(late, [], 'no probe begins while paused (the one in flight may land: it began before)');
  const unpausedAt = Date.now();
  await docker(['unpause', 'paused']);
  const after = await waitHealth('paused', 'healthy');
  t.true(Date.parse(after.Log[after.Log.length - 1].Start) >= unpausedAt - 1000, 'a probe ran after the unpause');
  await docker(['rm', '-f', 'paused']);
});

test.serial('bad health checks are refused with INVALID_ARGUMENT before anything is made', async (t) => {
  const bad = [
    { Test: ['PING', 'x'] },
    { Test: ['CMD'] },
    { Test: ['CMD-SHELL', 'true'], Interval: 10 },
    { Test: ['CMD-SHELL', 'true'], Retries: -1 },
    { Test: ['CMD-SHELL', 'true'], Period: 5 },
  ];
  for (const Healthcheck of bad) {
    const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], Healthcheck } as never), undefined, JSON.stringify(Healthcheck));
    t.is((e as BerthError).code, 'INVALID_ARGUMENT', JSON.stringify(Healthcheck));
  }
  const r = await d.berth(['run', '-d', '--no-healthcheck', '--health-cmd', 'true', 'busybox', 'true']);
  t.not(r.code, 0);
  t.regex(r.stderr, /--no-healthcheck conflicts/);
  t.deepEqual(await d.containers.list({ all: true }), [], 'nothing was created');
});

test.serial('berth run --health-cmd; checks go on for a container adopted after the daemon restarts', async (t) => {
  const r = await d.berth(['run', '-d', '--name', 'kept', '--health-cmd', 'cat /tmp/ok', '--health-interval', '300ms', '--health-start-period', '10m', 'busybox', 'sleep', '1000']);
  t.is(r.code, 0, r.stderr);
  const ps = await d.berth(['ps', '--filter', 'health=starting', '--format', '{{.Names}} {{.Status}}']);
  t.regex(ps.stdout, /^kept Up .*\(health: starting\)$/m);
  let before = 0;
  await eventually(async () => (before = (await health('kept'))?.Log.length ?? 0) >= 1, { message: 'a first probe result' });

  await d.kill(); // SIGKILL: the container runs on without berthd
  await d.restart();
  t.is((await health('kept'))?.Status, 'starting', 'the recorded state is kept');
  await docker(['exec', 'kept', 'touch', '/tmp/ok']);
  const h = await waitHealth('kept', 'healthy');
  t.true(h.Log.length > Math.min(before, 4), 'new results after the restart');
  t.regex(h.Log[h.Log.length - 1].Start, /^\d{4}-/);
  await docker(['rm', '-f', 'kept']);
});
