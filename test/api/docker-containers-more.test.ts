import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';

test('docker events reports create, start, die and destroy of a run --rm', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const since = Math.floor(Date.now() / 1000) - 1;
  const r = await d.docker(['run', '--rm', '--name', 'ev', 'busybox', 'true']);
  t.is(r.code, 0, r.stderr);
  const until = Math.ceil(Date.now() / 1000) + 1;
  const ev = await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=ev', '--format', '{{.Action}}']);
  t.is(ev.code, 0, ev.stderr);
  const actions = ev.stdout.trim().split('\n');
  for (const a of ['create', 'start', 'die', 'destroy']) t.true(actions.includes(a), `${a} in ${actions.join(',')}`);
  t.true(actions.indexOf('create') < actions.indexOf('start') && actions.indexOf('die') < actions.indexOf('destroy'));
});

test('docker top, rename, pause, unpause and container prune work on berthd', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  t.is((await d.docker(['run', '-d', '--name', 'p1', 'busybox', 'sleep', '1000'])).code, 0);
  const top = await d.docker(['top', 'p1']);
  t.is(top.code, 0, top.stderr);
  t.regex(top.stdout, /sleep 1000/);
  t.is((await d.docker(['rename', 'p1', 'p2'])).code, 0);
  t.is((await d.docker(['pause', 'p2'])).code, 0);
  t.is((await d.docker(['inspect', '-f', '{{.State.Status}}', 'p2'])).stdout.trim(), 'paused');
  t.is((await d.docker(['unpause', 'p2'])).code, 0);
  t.is((await d.docker(['inspect', '-f', '{{.State.Status}}', 'p2'])).stdout.trim(), 'running');
  t.is((await d.docker(['run', '--name', 'done', 'busybox', 'true'])).code, 0);
  const prune = await d.docker(['container', 'prune', '-f']);
  t.is(prune.code, 0, prune.stderr);
  t.is((await d.docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.trim(), 'p2', 'prune removed only the stopped one');
  t.is((await d.docker(['rm', '-f', 'p2'])).code, 0);
});

test('--runtime names another OCI runtime: berth drives whatever binary it is given', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const calls = path.join(d.root, 'runtime-calls');
  const wrapper = path.join(d.root, 'my-runtime');
  // A stand-in OCI runtime: records each call, then hands it to runc.
  fs.writeFileSync(wrapper, `#!/bin/sh\necho "$@" >> ${calls}\nexec runc "$@"\n`, { mode: 0o755 });
  const r = await d.berth(['run', '--rm', '--runtime', wrapper, 'busybox', 'echo', 'via wrapper']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'via wrapper\n');
  const log = fs.readFileSync(calls, 'utf8');
  t.regex(log, /\bcreate\b/);
  t.regex(log, /\bstart\b/);
});
