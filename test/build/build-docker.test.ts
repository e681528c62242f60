import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { spawn } from 'node:child_process';
import * as tarStream from 'tar-stream';
import { TestDaemon } from '../helpers/daemon';
import { runCommand } from '../helpers/proc';
import { mountsUnder } from '../helpers/mounts';
import { eventually } from '../helpers/eventually';
import { writeContext } from './helpers';

/**
 * docker build against berthd's classic builder (POST /build), with the real docker CLI:
 * DOCKER_BUILDKIT=0 and its default (without the buildx plugin it falls back to the
 * classic builder, which /_ping's Builder-Version: 1 confirms), the full config and
 * history of a built image, the cache, .dockerignore, a failing RUN, multi-stage with
 * --target, hostile contexts, and what is refused. One daemon for the file; the tests run
 * one at a time, because each checks that a build leaves no container behind.
 */

let d: TestDaemon;
let work: string;
test.before(async () => {
  d = await TestDaemon.start();
  work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-build-'));
});
test.after.always(async () => {
  await d?.stop();
  if (work) await fs.promises.rm(work, { recursive: true, force: true });
});

/** A context directory under this file's work dir (a value of null makes a directory). */
const context = (name: string, files: Record<string, string | null>): string => writeContext(work, name, files);

const docker = (args: string[], env: NodeJS.ProcessEnv = { DOCKER_BUILDKIT: '0' }) => runCommand('docker', args, { env: { ...d.env, ...env } });

/** The containers, mounts and build scratch a build may leave behind: none. */
async function leftovers(): Promise<{ containers: number; mounts: string[]; scratch: string[] }> {
  const containers = (await d.containers.list({ all: true })).length;
  const scratch = fs.readdirSync(path.join(d.root, 'tmp')).filter((n) => n.startsWith('build-'));
  return { containers, mounts: mountsUnder(path.join(d.root, 'containers')), scratch };
}

test.serial('docker build (DOCKER_BUILDKIT=0) runs every instruction; the image has the full config and docker history shows the steps', async (t) => {
  const dir = context('full', {
    Dockerfile: [
      'ARG BASE=busybox',
      'FROM ${BASE} AS base',
      'ARG GREETING=hello',
      'ENV APP_HOME=/srv/app \\',
      '    MODE="two words"',
      'WORKDIR $APP_HOME',
      'COPY --chown=1000:1000 app.txt ./',
      'ADD bundle.tar /opt/',
      'RUN echo "$GREETING from $APP_HOME ${MODE:-none} ${UNSET:-dflt} ${MODE:+set}" > made.txt && cat made.txt',
      'SHELL ["/bin/sh", "-c"]',
      'RUN ["/bin/sh", "-c", "echo exec-form > exec.txt"]',
      'USER 1000:1000',
      'EXPOSE 8080 53/udp',
      'VOLUME ["/data"]',
      'LABEL org.example.name="demo app" version=1',
      'STOPSIGNAL SIGQUIT',
      'HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD test -f made.txt',
      'ONBUILD RUN echo child',
      'ENTRYPOINT ["/bin/sh", "-c"]',
      'CMD ["cat made.txt"]',
      '',
    ].join('\n'),
    'app.txt': 'app content\n',
  });
  // A local tar ADD unpacks.
  const pack = tarStream.pack();
  pack.entry({ name: 'bundle/inside.txt' }, 'from the tar\n');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  fs.writeFileSync(path.join(dir, 'bundle.tar'), Buffer.concat(chunks));

  const r = await docker(['build', '--build-arg', 'GREETING=hi', '-t', 'full:1', '-t', 'full:2', dir]);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.regex(r.stdout, /Step 1\/18 : FROM \$\{BASE\} AS base/);
  t.regex(r.stdout, /hi from \/srv\/app two words dflt set/);
  t.regex(r.stdout, /Successfully built [0-9a-f]{12}/);
  t.regex(r.stdout, /Successfully tagged full:2/);

  const img = JSON.parse((await docker(['image', 'inspect', 'full:1'])).stdout)[0];
  const c = img.Config;
  t.deepEqual(c.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'APP_HOME=/srv/app', 'MODE=two words']);
  t.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
  t.deepEqual(c.Cmd, ['cat made.txt']);
  t.is(c.WorkingDir, '/srv/app');
  t.is(c.User, '1000:1000');
  t.deepEqual(c.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
  t.deepEqual(c.Volumes, { '/data': {} });
  t.deepEqual(c.Labels, { 'org.example.name': 'demo app', version: '1' });
  t.is(c.StopSignal, 'SIGQUIT');
  t.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'test -f made.txt'], Interval: 5e9, Timeout: 2e9, Retries: 3 });
  t.deepEqual(c.OnBuild, ['RUN echo child']);
  t.deepEqual(img.RepoTags.sort(), ['full:1', 'full:2']);

  const hist = (await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'full:1'])).stdout;
  t.regex(hist, /#\(nop\)\s+CMD \["cat made.txt"\]/);
  t.regex(hist, /#\(nop\) COPY file:[0-9a-f]{64} in \.\//);
  t.regex(hist, /\|1 GREETING=hi \/bin\/sh -c echo "\$GREETING/);
  t.regex(hist, /#\(nop\)\s+ENV APP_HOME=\/srv\/app/);

  // The files: content, owner from --chown, the tar unpacked, RUN's output in the layer.
  const out = await docker(['run', '--rm', '--user', '0', '--entrypoint', 'sh', 'full:1', '-c', 'cat made.txt exec.txt /opt/bundle/inside.txt; stat -c %u:%g app.txt']);
  t.is(out.stdout, 'hi from /srv/app two words dflt set\nexec-form\nfrom the tar\n1000:1000\n', out.stderr);
  t.deepEqual(c.Shell, ['/bin/sh', '-c']);

  // A build FROM it runs its ONBUILD trigger first; the child does not inherit the trigger.
  const child = context('onbuild-child', { Dockerfile: 'FROM full:1\nUSER 0\n' });
  const rc = await docker(['build', '-t', 'child:1', child]);
  t.is(rc.code, 0, rc.stderr);
  t.regex(rc.stdout, /# Executing 1 build trigger[\s\S]*Step RUN echo child[\s\S]*\nchild\n/);
  t.falsy(JSON.parse((await docker(['image', 'inspect', 'child:1'])).stdout)[0].Config.OnBuild);
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
});

test.serial('docker build with the CLI default (no buildx plugin) falls back to the classic builder and builds', async (t) => {
  const dir = context('default-cli', { Dockerfile: 'FROM busybox\nRUN echo made-by-default > /f\n' });
  const r = await docker(['build', '-q', dir], {});
  t.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  t.regex(id, /^sha256:[0-9a-f]{64}$/);
  t.is((await docker(['run', '--rm', id, 'cat', '/f'])).stdout, 'made-by-default\n');
  // What made the CLI choose it: the daemon says it has the classic builder.
  const ping = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => http.get({ socketPath: d.socket, path: '/_ping' }, (res) => (res.resume(), resolve(res.headers))).on('error', reject));
  t.is(ping['builder-version'], '1');
});

test.serial('a rebuild of an unchanged context is all cache hits; changing one copied file re-runs from that step only; docker images hides the cached steps', async (t) => {
  const dir = context('cache', {
    Dockerfile: 'FROM busybox\nENV A=1\nRUN echo first > /first\nCOPY one.txt /one.txt\nRUN cat /one.txt > /derived\nCOPY two.txt /two.txt\nRUN date +%s%N > /stamp\n',
    'one.txt': 'one\n',
    'two.txt': 'two\n',
  });
  const first = await docker(['build', '-t', 'cache:1', dir]);
  t.is(first.code, 0, first.stderr);
  t.notRegex(first.stdout, /Using cache/);
  const stamp = (await docker(['run', '--rm', 'cache:1', 'cat', '/stamp'])).stdout;

  const again = await docker(['build', '-t', 'cache:1', dir]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout.match(/Using cache/g)?.length, 6, again.stdout);
  t.notRegex(again.stdout, /Running in/);
  t.is((await docker(['run', '--rm', 'cache:1', 'cat', '/stamp'])).stdout, stamp);

  // Only the content counts: a new mtime with the same bytes is still a hit.
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(dir, 'two.txt'), later, later);
  const touched = await docker(['build', dir]);
  t.is(touched.stdout.match(/Using cache/g)?.length, 6, touched.stdout);

  fs.writeFileSync(path.join(dir, 'one.txt'), 'ONE\n');
  const changed = await docker(['build', '-t', 'cache:2', dir]);
  t.is(changed.code, 0, changed.stderr);
  // Steps 2 (ENV) and 3 (RUN) hit; 4 (COPY one.txt) and everything after it run again.
  const steps = changed.stdout.split(/^Step /m).slice(1);
  t.deepEqual(
    steps.map((s) => /Using cache/.test(s)),
    [false, true, true, false, false, false, false],
    changed.stdout,
  );
  t.is((await docker(['run', '--rm', 'cache:2', 'cat', '/derived'])).stdout, 'ONE\n');

  const nocache = await docker(['build', '--no-cache', dir]);
  t.notRegex(nocache.stdout, /Using cache/);

  // The steps' images are the cache: `docker images` hides them (untagged, with a child), -a lists them.
  const intermediate = /Step 2\/7 : ENV A=1\n ---> Using cache\n ---> ([0-9a-f]{12})/.exec(again.stdout)?.[1] ?? 'missing';
  t.false((await docker(['images', '-q'])).stdout.split('\n').includes(intermediate));
  t.true((await docker(['images', '-a', '-q'])).stdout.split('\n').includes(intermediate));
  t.regex(JSON.parse((await docker(['image', 'inspect', 'cache:1'])).stdout)[0].Parent, /^sha256:[0-9a-f]{64}$/);
});

test.serial('.dockerignore keeps excluded files out of the context, with ! exceptions, as Docker reads it', async (t) => {
  const dir = context('ignore', {
    Dockerfile: 'FROM busybox\nCOPY . /ctx/\nRUN find /ctx -type f | sort\n',
    '.dockerignore': '*.log\nsecret/\nnode_modules\n!keep.log\n',
    'a.txt': 'a',
    'debug.log': 'noise',
    'keep.log': 'kept',
    'secret/key': 'k',
    'node_modules/x/index.js': 'x',
    'src/main.c': 'int main(){}',
  });
  const r = await docker(['build', '-t', 'ignore:1', dir]);
  t.is(r.code, 0, r.stderr);
  const files = (await docker(['run', '--rm', 'ignore:1', 'find', '/ctx', '-type', 'f'])).stdout.trim().split('\n').sort();
  t.deepEqual(files, ['/ctx/.dockerignore', '/ctx/Dockerfile', '/ctx/a.txt', '/ctx/keep.log', '/ctx/src/main.c']);
});

test.serial('a failing RUN reports its output and exit code, and leaves no container, mount or scratch behind', async (t) => {
  const before = (await d.images.list({ all: true })).length;
  const dir = context('fail', { Dockerfile: 'FROM busybox\nRUN echo to-stdout; echo to-stderr >&2; exit 42\nRUN echo never\n' });
  const r = await docker(['build', dir]);
  t.is(r.code, 42);
  t.regex(r.stdout, /to-stdout/);
  t.regex(r.stdout + r.stderr, /to-stderr/);
  t.regex(r.stderr, /The command '\/bin\/sh -c echo to-stdout; echo to-stderr >&2; exit 42' returned a non-zero code: 42/);
  t.notRegex(r.stdout, /never/);
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
  t.is((await d.images.list({ all: true })).length, before, 'no image is made by the failed step');
});

test.serial('multi-stage with --target builds only the stages the target needs, and COPY --from takes files from a stage', async (t) => {
  const dir = context('stages', {
    Dockerfile: [
      'FROM busybox AS broken',
      'RUN exit 1',
      'FROM busybox AS build',
      'RUN mkdir /out && echo built > /out/artifact',
      'FROM scratch AS final',
      'COPY --from=build /out/artifact /artifact',
      'FROM busybox AS check',
      'COPY --from=final /artifact /copied',
      'COPY --from=1 /out/ /all/',
      'CMD ["cat", "/copied", "/all/artifact"]',
      '',
    ].join('\n'),
  });
  const r = await docker(['build', '--target', 'check', '-t', 'stages:check', dir]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.notRegex(r.stdout, /RUN exit 1/, 'the stage nobody needs is not built');
  t.is((await docker(['run', '--rm', 'stages:check'])).stdout, 'built\nbuilt\n');
  const fin = await docker(['build', '--target', 'final', '-t', 'stages:final', dir]);
  t.is(fin.code, 0, fin.stderr);
  const img = JSON.parse((await docker(['image', 'inspect', 'stages:final'])).stdout)[0];
  t.is(img.RootFS.Layers.length, 1, 'FROM scratch + one COPY is one layer');
  const bad = await docker(['build', '--target', 'nope', dir]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /failed to reach build target nope/);
});

test.serial('hostile contexts: COPY through symlinks out of the context or .. paths copies nothing from outside it; a tar entry climbing out is refused', async (t) => {
  const outside = path.join(work, 'outside-secret.txt');
  fs.writeFileSync(outside, 'host secret\n');
  const dir = context('hostile', {
    Dockerfile: 'FROM busybox\nCOPY link-out /via-link\nCOPY dir-link/ /via-dir/\nRUN cat /via-link /via-dir/* 2>&1; true\n',
  });
  fs.symlinkSync(outside, path.join(dir, 'link-out'));
  fs.symlinkSync(work, path.join(dir, 'dir-link'));
  const r = await docker(['build', dir]);
  // The symlinks are resolved inside the context: their targets are not there.
  t.not(r.code, 0);
  t.regex(r.stderr, /file not found in build context/);
  t.notRegex(r.stdout + r.stderr, /host secret/);

  const dots = context('dots', { Dockerfile: 'FROM busybox\nCOPY ../outside-secret.txt /x\n' });
  const r2 = await docker(['build', dots]);
  t.not(r2.code, 0);
  t.regex(r2.stderr, /file not found in build context/);

  // A symlink inside a copied directory is copied as the link it is, never followed.
  const inner = context('inner-link', { Dockerfile: 'FROM busybox\nCOPY tree/ /tree/\nCMD ["readlink", "/tree/escape"]\n', 'tree/plain.txt': 'p' });
  fs.symlinkSync(outside, path.join(inner, 'tree', 'escape'));
  const r3 = await docker(['build', '-t', 'inner:1', inner]);
  t.is(r3.code, 0, r3.stderr);
  t.is((await docker(['run', '--rm', 'inner:1'])).stdout, `${outside}\n`);
  t.is((await docker(['run', '--rm', 'inner:1', 'sh', '-c', 'cat /tree/escape 2>/dev/null || echo unreadable'])).stdout, 'unreadable\n');

  // A context tar with an entry that climbs out of the context: refused, nothing written.
  const pack = tarStream.pack();
  pack.entry({ name: 'Dockerfile' }, 'FROM busybox\n');
  pack.entry({ name: '../../../../../../tmp/berth-build-escape.txt' }, 'escaped\n');
  pack.finalize();
  const body: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) body.push(c);
  const answer = await post('/build', Buffer.concat(body));
  t.regex(answer, /errorDetail/);
  t.false(fs.existsSync('/tmp/berth-build-escape.txt'));
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
});

test.serial('what the classic builder does not do is refused with an error naming the line: heredocs, RUN --mount, COPY --link, # syntax=, ADD of a URL, BuildKit', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['FROM busybox\nRUN <<EOF\necho hi\nEOF\n', /line 2: heredocs/],
    ['FROM busybox\nRUN --mount=type=cache,target=/c echo hi\n', /line 2: RUN --mount is a BuildKit feature/],
    ['FROM busybox\nCOPY --link Dockerfile /x\n', /line 2: COPY --link is a BuildKit feature/],
    ['# syntax=docker/dockerfile:1\nFROM busybox\n', /line 1: .*syntax/],
    ['FROM busybox\nADD https://example.org/x.tgz /x\n', /line 2: ADD of a URL/],
    ['FROM busybox\nFROBNICATE x\n', /line 2: unknown instruction: FROBNICATE/],
    ['FROM busybox\nENV X=${Y/a/b}\n', /line 2: unsupported substitution/],
  ];
  for (const [text, re] of cases) {
    const dir = context(`refused-${cases.findIndex((c) => c[0] === text)}`, { Dockerfile: text });
    const r = await docker(['build', dir]);
    t.not(r.code, 0, text);
    t.regex(r.stderr, re, text);
  }
  const v2 = await post('/build?version=2', Buffer.alloc(1024));
  t.regex(v2, /"code":"INVALID_ARGUMENT"/);
  t.regex(v2, /DOCKER_BUILDKIT=0/);
  const squash = await post('/build?squash=1', Buffer.alloc(1024));
  t.regex(squash, /squash/);
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
});

test.serial('WORKDIR makes its directory (root-owned) without a RUN; COPY into a declared VOLUME stays in the image; history names each step image; a RUN that changes nothing adds no layer', async (t) => {
  const dir = context('fidelity', {
    Dockerfile: ['FROM busybox', 'USER 1000', 'WORKDIR /made/here', 'VOLUME /vol', 'COPY data.txt /vol/data.txt', 'RUN true', ''].join('\n'),
    'data.txt': 'kept\n',
  });
  const r = await docker(['build', '-t', 'fidelity:1', dir]);
  t.is(r.code, 0, r.stderr + r.stdout);
  const out = await docker(['run', '--rm', '--user', '0', 'fidelity:1', 'sh', '-c', 'stat -c "%U %a" /made/here; cat /vol/data.txt']);
  t.is(out.stdout, 'root 755\nkept\n', out.stderr);

  const img = JSON.parse((await docker(['image', 'inspect', 'fidelity:1'])).stdout)[0];
  // busybox's layer, WORKDIR's and COPY's; RUN true changed nothing, so it adds none.
  t.is(img.RootFS.Layers.length, 3);
  const rows = (await docker(['history', '--no-trunc', '--format', '{{.ID}}|{{.Size}}|{{.CreatedBy}}', 'fidelity:1'])).stdout.trim().split('\n');
  t.is(rows.length, 6, rows.join('\n'));
  for (const row of rows) t.regex(row, /^sha256:[0-9a-f]{64}\|/, 'a local build names every step image');
  t.regex(rows[0], /\|0B\|\/bin\/sh -c true$/);
  t.regex(rows[3], /#\(nop\) WORKDIR \/made\/here$/);
  // The step ids are the parent chain.
  t.is(rows[1].split('|')[0], img.Parent);
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
});

test.serial('a RUN layer holds only what the command changed: no /etc/hosts, resolv.conf, hostname or mount points', async (t) => {
  const dir = context('clean-layer', { Dockerfile: 'FROM busybox\nRUN echo x > /made.txt\n' });
  const r = await docker(['build', '-t', 'cleanlayer:1', dir]);
  t.is(r.code, 0, r.stderr);
  const saved = await runCommand('sh', ['-c', `docker save cleanlayer:1 | tar -xO manifest.json`], { env: d.env });
  const manifest = JSON.parse(saved.stdout)[0];
  const top = manifest.Layers[manifest.Layers.length - 1];
  const list = await runCommand('sh', ['-c', `docker save cleanlayer:1 | tar -xO ${top} | tar -t`], { env: d.env });
  t.deepEqual(list.stdout.trim().split('\n'), ['made.txt'], list.stderr);
});

test.serial('RUN after VOLUME: the step volumes go without waiting for btrfs to reclaim them; a mount point the image lacked stays, empty, as in Docker; writes into volumes do not', async (t) => {
  const dir = context('volume-run', {
    Dockerfile: [
      'FROM busybox',
      'WORKDIR /w/x',
      'VOLUME /newvol /w/x',
      'RUN echo lost > /newvol/f && echo lost > /w/x/g && echo kept > /kept.txt',
      'RUN echo two > /two.txt',
      'RUN echo three > /three.txt',
      '',
    ].join('\n'),
  });
  const started = Date.now();
  const r = await docker(['build', '-t', 'volrun:1', dir]);
  const secs = (Date.now() - started) / 1000;
  t.is(r.code, 0, r.stderr + r.stdout);
  // A hang bound only: waiting for btrfs's cleaner took ~30 s per step volume (six here, ~3 min).
  t.true(secs < 120, `the build took ${secs} s`);
  t.is((await docker(['volume', 'ls', '-q'])).stdout.trim(), '', 'the step volumes are gone');
  const layers = await savedLayers('volrun:1');
  // RUN's layer: its file and the volume mount point it had to make (/w/x was there).
  t.deepEqual(layers[layers.length - 3].names, ['kept.txt', 'newvol']);
  t.deepEqual(layers[layers.length - 2].names, ['two.txt'], 'a mount point made once is no change of the next step');
  const out = await docker(['run', '--rm', 'volrun:1', 'sh', '-c', 'ls -A /newvol /w/x; cat /kept.txt']);
  t.is(out.stdout, '/newvol:\n\n/w/x:\nkept\n', out.stderr);
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
});

test.serial('docker diff shows a bind or volume mount point the image lacked as added, none where the image has the path', async (t) => {
  const host = fs.mkdtempSync(path.join(work, 'bind-'));
  const made = await docker(['run', '--name', 'mountpoints', '-v', `${host}:/bindtarget`, '-v', '/anonvol', '-v', `${host}:/tmp`, '-v', `${host}:/etc/bound`, '-v', `${host}:/bin/newpoint`, 'busybox', 'true']);
  t.is(made.code, 0, made.stderr);
  t.teardown(() => docker(['rm', '-fv', 'mountpoints']));
  const lines = (await docker(['diff', 'mountpoints'])).stdout.trim().split('\n').sort();
  t.deepEqual(lines, ['A /anonvol', 'A /bin/newpoint', 'A /bindtarget', 'A /etc/bound', 'C /bin', 'C /etc']);
  const img = (await docker(['commit', 'mountpoints'])).stdout.trim();
  t.teardown(() => docker(['rmi', img]));
  const top = (await savedLayers(img)).pop();
  t.deepEqual(top?.names, ['anonvol', 'bin', 'bin/newpoint', 'bindtarget', 'etc', 'etc/bound']);
  t.is((await docker(['rm', '-v', 'mountpoints'])).code, 0);

  // FROM scratch: the directories made only for berth's /etc, /dev, /proc and /sys mounts
  // are Docker's init layer, no change of a RUN.
  const dir = context('scratch-run', { Dockerfile: 'FROM scratch\nCOPY --from=busybox /bin/busybox /bin/busybox\nRUN ["/bin/busybox", "true"]\n' });
  const r = await docker(['build', '-t', 'scratchrun:1', dir]);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.deepEqual((await savedLayers('scratchrun:1')).map((l) => l.names), [['bin', 'bin/busybox']]);
});

test.serial('layer sizes are Docker\'s: the bytes of the regular files in each layer tar (a WORKDIR or mkdir layer is 0 B), in docker history and docker images', async (t) => {
  const dir = context('sizes', {
    Dockerfile: ['FROM busybox', 'WORKDIR /a/b/c', 'COPY five.txt .', 'RUN mkdir -p /d/e/f && ln -s /x /d/link && echo 1234 > /d/four && ln /d/four /d/hard', ''].join('\n'),
    'five.txt': '12345',
  });
  const r = await docker(['build', '-t', 'sizes:1', dir]);
  t.is(r.code, 0, r.stderr + r.stdout);
  const layers = await savedLayers('sizes:1');
  const rows = (await docker(['history', '--human=false', '--format', '{{.Size}}|{{.CreatedBy}}', 'sizes:1'])).stdout.trim().split('\n').reverse();
  const withLayer = rows.filter((row) => !/#\(nop\) {2}(ENV|CMD|VOLUME|LABEL)/.test(row));
  t.deepEqual(
    withLayer.map((row) => Number(row.split('|')[0])),
    layers.map((l) => l.bytes),
    rows.join('\n'),
  );
  t.deepEqual(layers.slice(-3).map((l) => l.bytes), [0, 5, 5], 'WORKDIR 0 B, COPY 5 B, RUN 5 B (the hard link is the same bytes, the link and directories none)');
  const size = JSON.parse((await docker(['image', 'inspect', 'sizes:1'])).stdout)[0].Size;
  t.is(size, layers.reduce((n, l) => n + l.bytes, 0));
});

/** Each layer of a saved image, bottom first: its entry names (no trailing /) and the bytes of its regular files. */
async function savedLayers(ref: string): Promise<Array<{ names: string[]; bytes: number }>> {
  const tarFile = path.join(work, `saved-${Date.now()}.tar`);
  const saved = await docker(['save', '-o', tarFile, ref]);
  if (saved.code !== 0) throw new Error(saved.stderr);
  try {
    const manifest = JSON.parse((await runCommand('tar', ['-xOf', tarFile, 'manifest.json'])).stdout)[0];
    const out: Array<{ names: string[]; bytes: number }> = [];
    for (const layer of manifest.Layers as string[]) {
      const list = await runCommand('sh', ['-c', `tar -xOf ${tarFile} ${layer} | tar -tv`]);
      const rows = list.stdout.trim().split('\n').filter(Boolean);
      // -tv: mode owner size date time name: regular files start with '-', hard links with 'h' (size 0)
      out.push({
        names: rows.map((row) => row.split(/\s+/).slice(5).join(' ').replace(/ -> .*$/, '').replace(/ link to .*$/, '').replace(/\/$/, '')).sort(),
        bytes: rows.filter((row) => row.startsWith('-')).reduce((n, row) => n + Number(row.split(/\s+/)[2]), 0),
      });
    }
    return out;
  } finally {
    fs.rmSync(tarFile, { force: true });
  }
}

test.serial('image prune keeps the build cache under a tagged image and removes a dangling build with its own steps; rmi takes the untagged chain', async (t) => {
  const dir = context('prune', { Dockerfile: 'FROM busybox\nENV P=1\nRUN echo p > /p\nCMD ["cat", "/p"]\n' });
  t.is((await docker(['build', '-t', 'prune:1', dir])).code, 0);
  const chain = async (ref: string) => {
    const ids: string[] = [];
    for (let id = ref; id; ) {
      const i = JSON.parse((await docker(['image', 'inspect', id])).stdout)[0];
      ids.push(i.Id);
      id = i.Parent;
    }
    return ids;
  };
  const kept = await chain('prune:1');
  t.is(kept.length, 4, 'the tagged CMD step, RUN, ENV and busybox');
  // A dangling build: its steps after the shared ones are pruned with it.
  const other = context('prune-dangling', { Dockerfile: 'FROM busybox\nENV P=1\nRUN echo other > /o\nENV Q=2\n' });
  const dangling = (await docker(['build', '-q', other])).stdout.trim();
  const danglingOwn = (await chain(dangling)).filter((id) => !kept.includes(id));
  t.is(danglingOwn.length, 2);
  const pruned = await docker(['image', 'prune', '-f']);
  t.is(pruned.code, 0, pruned.stderr);
  const all = (await docker(['images', '-a', '-q', '--no-trunc'])).stdout.split('\n');
  for (const id of kept) t.true(all.includes(id), `cached step ${id} survives image prune`);
  for (const id of danglingOwn) t.false(all.includes(id), `dangling ${id} is pruned`);
  // The cache still hits.
  const again = await docker(['build', '-t', 'prune:1', dir]);
  t.is(again.stdout.match(/Using cache/g)?.length, 3, again.stdout);
  // rmi of the tag removes the chain down to busybox, which is tagged.
  const rmi = await docker(['rmi', 'prune:1']);
  t.is(rmi.code, 0, rmi.stderr);
  const left = (await docker(['images', '-a', '-q', '--no-trunc'])).stdout.split('\n');
  for (const id of kept.slice(0, -1)) t.false(left.includes(id), `${id} went with prune:1`);
  t.true(left.includes(kept[kept.length - 1]), 'busybox stays');
});

test.serial('berth build --network, --add-host, --cache-from and --platform reach the build; a foreign platform or network is refused by name', async (t) => {
  const dir = context('flags', { Dockerfile: 'FROM busybox\nRUN grep -c eth0 /proc/net/dev > /eths; grep builder.test /etc/hosts > /hosts; true\n' });
  const none = await d.berth(['build', '-t', 'flags:none', '--network', 'none', '--add-host', 'builder.test:10.1.2.3', dir]);
  t.is(none.code, 0, none.stderr);
  t.is((await docker(['run', '--rm', 'flags:none', 'cat', '/eths', '/hosts'])).stdout, '0\n10.1.2.3\tbuilder.test\n');
  const bridged = await d.berth(['build', '-t', 'flags:bridge', '--no-cache', '--network', 'bridge', '--platform', `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`, dir]);
  t.is(bridged.code, 0, bridged.stderr);
  t.is((await docker(['run', '--rm', 'flags:bridge', 'cat', '/eths'])).stdout, '1\n');

  // --cache-from: hits only on the named images' chains.
  const cached = await d.berth(['build', '--network', 'none', '--add-host', 'builder.test:10.1.2.3', '--cache-from', 'flags:none', dir]);
  t.regex(cached.stdout, /Using cache/);
  const unrelated = await d.berth(['build', '--network', 'none', '--add-host', 'builder.test:10.1.2.3', '--cache-from', 'busybox', dir]);
  t.is(unrelated.code, 0, unrelated.stderr);
  t.notRegex(unrelated.stdout, /Using cache/);

  const arm = await d.berth(['build', '--platform', 'linux/s390x', dir]);
  t.not(arm.code, 0);
  t.regex(arm.stderr, /platform linux\/s390x is not supported/);
  const net = await d.berth(['build', '--network', 'mynet', dir]);
  t.not(net.code, 0);
  t.regex(net.stderr, /networkmode/);
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
});

test.serial('killing the docker build client mid-RUN cancels the build: the RUN container goes and no image of the step is made', async (t) => {
  const before = (await d.images.list({ all: true })).map((i) => i.Id).sort();
  const dir = context('cancel', { Dockerfile: 'FROM busybox\nRUN echo started; sleep 600\n' });
  const child = spawn('docker', ['build', dir], { env: { ...d.env, DOCKER_BUILDKIT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  child.stdout.on('data', (c) => (seen += c));
  const exited = new Promise((r) => child.on('close', r));
  // The command's own output line (the step header also holds the word).
  await eventually(() => /^started$/m.test(seen), { message: 'the RUN step to start', timeout: 60_000 });
  t.is((await d.containers.list({ all: true })).length, 1, 'the RUN container is there while it runs');
  child.kill('SIGKILL');
  await exited;
  await eventually(async () => (await d.containers.list({ all: true })).length === 0, { message: 'the RUN container to go', timeout: 60_000 });
  await eventually(async () => (await leftovers()).scratch.length === 0, { message: 'the context scratch to go' });
  t.deepEqual(await leftovers(), { containers: 0, mounts: [], scratch: [] });
  t.deepEqual((await d.images.list({ all: true })).map((i) => i.Id).sort(), before, 'no image of the cancelled step');
});

test.serial('a built image goes through docker save and docker load into a fresh daemon and runs there', async (t) => {
  const dir = context('portable', {
    Dockerfile: 'FROM busybox\nWORKDIR /app\nCOPY hello.txt .\nRUN cat hello.txt > copy.txt\nCMD ["cat", "/app/copy.txt"]\n',
    'hello.txt': 'hello from a saved build\n',
  });
  t.is((await docker(['build', '-t', 'portable:1', dir])).code, 0);
  const tarFile = path.join(work, 'portable.tar');
  const saved = await docker(['save', '-o', tarFile, 'portable:1']);
  t.is(saved.code, 0, saved.stderr);
  const fresh = await TestDaemon.start();
  t.teardown(() => fresh.stop());
  const loaded = await fresh.docker(['load', '-i', tarFile]);
  t.is(loaded.code, 0, loaded.stderr);
  t.regex(loaded.stdout, /Loaded image: portable:1/);
  const run = await fresh.docker(['run', '--rm', 'portable:1']);
  t.is(run.stdout, 'hello from a saved build\n', run.stderr);
  const a = JSON.parse((await docker(['image', 'inspect', 'portable:1'])).stdout)[0];
  const b = JSON.parse((await fresh.docker(['image', 'inspect', 'portable:1'])).stdout)[0];
  t.is(b.Id, a.Id, 'the same image id on both daemons');
  t.deepEqual(b.Config.WorkingDir, '/app');
});

/** A raw POST to the daemon; the answer body as text (an HTTP error or the JSON stream). */
function post(p: string, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.socket, path: `/v1.41${p}`, method: 'POST', headers: { 'Content-Type': 'application/x-tar', 'Content-Length': body.length } }, (res) => {
      let s = '';
      res.on('data', (c) => (s += c));
      res.on('end', () => resolve(s));
    });
    req.on('error', reject);
    req.end(body);
  });
}
