import test from 'ava';
import { digest } from '../helpers/digest';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { familiarTagged, fullTagged, idPrefix, parseNamed, parseReference, parseRepoTag } from '../../src/images/reference';
import { applyChanges, chainIDs } from '../../src/images/config';
import { parseLdd } from '../../src/images/vendor';

test('a bare name normalises to docker.io/library/<name>:latest and displays as name:latest', (t) => {
  const r = parseNamed('busybox');
  t.is(r.name, 'docker.io/library/busybox');
  t.is(r.repo, 'busybox');
  t.is(r.tag, 'latest');
  t.is(familiarTagged({ repo: r.repo, tag: r.tag! }), 'busybox:latest');
  t.is(fullTagged('busybox:latest'), 'docker.io/library/busybox:latest');
});

test('docker.io and index.docker.io prefixes are dropped from the familiar name', (t) => {
  t.is(parseNamed('docker.io/library/busybox:1.36').repo, 'busybox');
  t.is(parseNamed('index.docker.io/library/busybox').repo, 'busybox');
  t.is(parseNamed('docker.io/myorg/app').repo, 'myorg/app');
  t.is(parseNamed('myorg/app').name, 'docker.io/myorg/app');
});

test('a registry with a port keeps its host, and the tag after the port is a tag', (t) => {
  const r = parseReference('localhost:5000/a/b:t');
  t.is(r.domain, 'localhost:5000');
  t.is(r.path, 'a/b');
  t.is(r.repo, 'localhost:5000/a/b');
  t.is(r.tag, 't');
  const noTag = parseNamed('localhost:5000/a/b');
  t.is(noTag.tag, 'latest');
  t.is(parseNamed('localhost/whiteouts:latest').repo, 'localhost/whiteouts');
  t.is(parseNamed('registry.example.com/x').repo, 'registry.example.com/x');
});

test('digest references parse', (t) => {
  const d = `sha256:${'a'.repeat(64)}`;
  const r = parseReference(`busybox@${d}`);
  t.is(r.digest, d);
  t.is(r.tag, undefined);
  t.is(parseReference(`busybox:1@${d}`).tag, '1');
});

test('names Docker rejects are rejected with a hint', (t) => {
  const bad = [
    'UPPER',
    'lower/Upper',
    'a/../b',
    '-x',
    'x-',
    'a//b',
    '/a',
    'a/',
    '.a',
    'a..b',
    'a:',
    `busybox:${'t'.repeat(129)}`,
    'busybox:-tag',
    'busybox:.tag',
    'a'.repeat(256),
    'a@sha256:xyz',
    '',
    'a'.repeat(64).replace(/a/g, 'f'),
  ];
  for (const s of bad) {
    const e = t.throws(() => parseReference(s), { instanceOf: InvalidArgumentError }, s);
    t.truthy(e?.hint, `hint for ${s}`);
  }
});

test('valid names with separators are accepted', (t) => {
  // An upper-case first component is a registry host, as in Docker.
  for (const s of ['Upper/case', 'a_b', 'a__b', 'a-b', 'a---b', 'a.b', 'a/b/c', `busybox:${'t'.repeat(128)}`, 'busybox:Tag_1.0-rc']) {
    t.notThrows(() => parseReference(s), s);
  }
});

test('repo plus tag: the tag may be given once, in either place', (t) => {
  t.is(familiarTagged(parseRepoTag('myimage', 'v1')), 'myimage:v1');
  t.is(familiarTagged(parseRepoTag('myimage:v1')), 'myimage:v1');
  t.is(familiarTagged(parseRepoTag('myimage')), 'myimage:latest');
  t.throws(() => parseRepoTag('myimage:v1', 'v2'), { instanceOf: InvalidArgumentError });
  t.throws(() => parseRepoTag('myimage', 'bad tag'), { instanceOf: InvalidArgumentError });
});

test('id prefixes are recognised with and without sha256:', (t) => {
  t.is(idPrefix('sha256:abcd'), 'abcd');
  t.is(idPrefix('abcd'), 'abcd');
  t.is(idPrefix('busybox'), undefined);
  t.is(idPrefix('ABCD'), undefined);
});

test('chain ids follow the OCI definition', (t) => {
  const d1 = digest('one');
  const d2 = digest('two');
  const d3 = digest('three');
  const c = chainIDs([d1, d2, d3]);
  t.is(c[0], d1);
  t.is(c[1], digest(`${d1} ${d2}`));
  t.is(c[2], digest(`${c[1]} ${d3}`));
});

test('changes: CMD and ENTRYPOINT in JSON and shell form', (t) => {
  t.deepEqual(applyChanges({}, ['CMD ["sh", "-c", "echo hi"]']).Cmd, ['sh', '-c', 'echo hi']);
  t.deepEqual(applyChanges({}, ['CMD echo hi there']).Cmd, ['/bin/sh', '-c', 'echo hi there']);
  t.deepEqual(applyChanges({}, ['ENTRYPOINT ["/app"]']).Entrypoint, ['/app']);
  t.deepEqual(applyChanges({}, ['entrypoint /app --flag']).Entrypoint, ['/bin/sh', '-c', '/app --flag']);
});

test('changes: ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL', (t) => {
  const c = applyChanges({}, [
    'ENV A=1 B="two words"',
    'ENV C three words',
    'ENV A=replaced',
    'LABEL org.example.x=y "with space"="v w"',
    'WORKDIR /srv',
    'WORKDIR app',
    'USER nobody',
    'EXPOSE 80 53/udp 8000-8001',
    'VOLUME ["/data", "/logs"]',
    'VOLUME /cache',
    'STOPSIGNAL SIGINT',
  ]);
  t.deepEqual(c.Env, ['B=two words', 'C=three words', 'A=replaced']);
  t.deepEqual(c.Labels, { 'org.example.x': 'y', 'with space': 'v w' });
  t.is(c.WorkingDir, '/srv/app');
  t.is(c.User, 'nobody');
  t.deepEqual(Object.keys(c.ExposedPorts ?? {}).sort(), ['53/udp', '80/tcp', '8000/tcp', '8001/tcp']);
  t.deepEqual(Object.keys(c.Volumes ?? {}).sort(), ['/cache', '/data', '/logs']);
  t.is(c.StopSignal, 'SIGINT');
});

test('changes: unknown instructions and bad arguments are rejected with a hint', (t) => {
  for (const ch of ['RUN echo hi', 'FROM busybox', 'EXPOSE http', 'ENV', 'LABEL novalue', 'VOLUME [/x']) {
    const e = t.throws(() => applyChanges({}, [ch]), { instanceOf: InvalidArgumentError }, ch);
    t.truthy(e?.hint);
  }
});

test('ldd output parsing keeps libraries and the loader, skips the vdso', (t) => {
  const out = [
    '\tlinux-vdso.so.1 (0x00007ffd5a3e4000)',
    '\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0000000000)',
    '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0000100000)',
    '\t/lib64/ld-linux-x86-64.so.2 (0x00007f0000200000)',
  ].join('\n');
  t.deepEqual(parseLdd(out), ['/lib/x86_64-linux-gnu/libm.so.6', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
  t.throws(() => parseLdd('\tlibnope.so.1 => not found\n'), { code: 'FAILED_PRECONDITION' } as never);
});
