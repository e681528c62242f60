import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, useDaemon } from '../helpers/daemon';

/** More of the docker CLI's container verbs on berthd: one daemon for the file, names per test. */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(() => d?.stop());

test('docker events reports create, start, die and destroy of a run --rm', async (t) => {
  const share = useDaemon(t, d);
  const ev = share.name('ev');
  const since = Math.floor(Date.now() / 1000) - 1;
  const r = await d.docker(['run', '--rm', '--name', ev, 'busybox', 'true']);
  t.is(r.code, 0, r.stderr);
  const until = Math.ceil(Date.now() / 1000) + 1;
  const out = await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', `container=${ev}`, '--format', '{{.Action}}']);
  t.is(out.code, 0, out.stderr);
  const actions = out.stdout.trim().split('\n');
  for (const a of ['create', 'start', 'die', 'destroy']) t.true(actions.includes(a), `${a} in ${actions.join(',')}`);
  t.true(actions.indexOf('create') < actions.indexOf('start') && actions.indexOf('die') < actions.indexOf('destroy'));
});

test('docker top, rename, pause, unpause and container prune work on berthd', async (t) => {
  const share = useDaemon(t, d);
  // The prune is filtered on this test's label: on a shared daemon an unfiltered prune would
  // take the other tests' stopped containers.
  const mine = `t=${share.tag}`;
  const p1 = share.name('p1');
  const p2 = share.name('p2');
  t.is((await d.docker(['run', '-d', '--name', p1, '--label', mine, 'busybox', 'sleep', '1000'])).code, 0);
  const top = await d.docker(['top', p1]);
  t.is(top.code, 0, top.stderr);
  t.regex(top.stdout, /sleep 1000/);
  t.is((await d.docker(['rename', p1, p2])).code, 0);
  t.is((await d.docker(['pause', p2])).code, 0);
  t.is((await d.docker(['inspect', '-f', '{{.State.Status}}', p2])).stdout.trim(), 'paused');
  t.is((await d.docker(['unpause', p2])).code, 0);
  t.is((await d.docker(['inspect', '-f', '{{.State.Status}}', p2])).stdout.trim(), 'running');
  const done = share.name('done');
  t.is((await d.docker(['run', '--name', done, '--label', mine, 'busybox', 'true'])).code, 0);
  t.is((await d.docker(['ps', '-a', '--filter', `label=${mine}`, '--format', '{{.Names}}'])).stdout.trim().split('\n').sort().join(' '), [done, p2].sort().join(' '));
  const prune = await d.docker(['container', 'prune', '-f', '--filter', `label=${mine}`]);
  t.is(prune.code, 0, prune.stderr);
  t.is((await d.docker(['ps', '-a', '--filter', `label=${mine}`, '--format', '{{.Names}}'])).stdout.trim(), p2, 'prune removed only the stopped one');
  t.is((await d.docker(['rm', '-f', p2])).code, 0);
});

test('--runtime names another OCI runtime: berth drives whatever binary it is given', async (t) => {
  const share = useDaemon(t, d);
  const dir = fs.mkdtempSync(path.join(d.root, 'runtime-'));
  t.teardown(() => fs.promises.rm(dir, { recursive: true, force: true }));
  const calls = path.join(dir, 'runtime-calls');
  const wrapper = path.join(dir, 'my-runtime');
  // A stand-in OCI runtime: records each call, then hands it to runc.
  fs.writeFileSync(wrapper, `#!/bin/sh\necho "$@" >> ${calls}\nexec runc "$@"\n`, { mode: 0o755 });
  const r = await d.berth(['run', '--rm', '--name', share.name('wrapped'), '--runtime', wrapper, 'busybox', 'echo', 'via wrapper']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'via wrapper\n');
  const log = fs.readFileSync(calls, 'utf8');
  t.regex(log, /\bcreate\b/);
  t.regex(log, /\bstart\b/);
});
