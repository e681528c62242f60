/**
 * Records written before create bodies were checked (issue 18): a container whose record
 * holds `"Labels": {"a": 5}` once broke `docker ps -a` for every client. Such records are
 * put right when the daemon opens its store, with a line in its log; listing never fails.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';

let d: TestDaemon;

test.before(async () => {
  d = await TestDaemon.start();
});

test.after.always(async () => {
  await d?.stop();
});

test('a record with a number label, a string Env and a string restart policy is repaired at start; docker ps -a lists it', async (t) => {
  const made = await d.docker(['create', '--name', 'old-record', '--label', 'keep=yes', 'busybox', 'true']);
  t.is(made.code, 0, made.stderr);
  const id = made.stdout.trim();
  await d.terminate();
  // What a create before the schema could store.
  const file = path.join(d.root, 'containers', id, 'container.json');
  const rec = JSON.parse(fs.readFileSync(file, 'utf8'));
  rec.Config.Labels = { keep: 'yes', a: 5, b: true, c: null, d: { x: 1 } };
  rec.Config.Env = 'A=b';
  rec.Config.Tty = 'yes';
  rec.HostConfig.RestartPolicy = 'always';
  rec.HostConfig.Binds = [5];
  fs.writeFileSync(file, JSON.stringify(rec));
  await d.restart();

  const ps = await d.docker(['ps', '-a', '--format', '{{.Names}} {{.Labels}}']);
  t.is(ps.code, 0, ps.stderr);
  t.regex(ps.stdout, /old-record/);
  const filtered = await d.docker(['ps', '-a', '-q', '--filter', 'label=a=5']);
  t.is(filtered.code, 0, filtered.stderr);
  t.is(filtered.stdout.trim(), id.slice(0, 12));
  const inspect = await d.docker(['inspect', id]);
  t.is(inspect.code, 0, inspect.stderr);
  const [info] = JSON.parse(inspect.stdout);
  t.deepEqual(info.Config.Labels, { keep: 'yes', a: '5', b: 'true' });
  t.deepEqual(info.Config.Env, ['A=b']);
  t.is(info.HostConfig.RestartPolicy.Name, 'no');
  t.regex(d.log(), new RegExp(`container ${id.slice(0, 12)}: its record had values of the wrong type`));
  const rm = await d.docker(['rm', id]);
  t.is(rm.code, 0, rm.stderr);
});
