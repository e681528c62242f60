/**
 * The docker CLI's port syntax, read and printed: `-p` (nat.ParsePortSpec), `--expose`,
 * the PORTS column of `ps` (DisplayablePorts) and `port`'s lines. Pure functions, no daemon.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { formatPortLines, formatPortsSummary, parseExpose, parsePublish } from '../../src/network/port-spec';
import { createBody } from '../../src/cli/commands/containers';

const any = (HostPort = '', HostIp = '') => [{ HostIp, HostPort }];

const good: Array<[string, ReturnType<typeof parsePublish>]> = [
  ['80', { exposed: ['80/tcp'], bindings: { '80/tcp': any() } }],
  ['8080:80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('8080') } }],
  [':80', { exposed: ['80/tcp'], bindings: { '80/tcp': any() } }],
  ['127.0.0.1:8080:80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('8080', '127.0.0.1') } }],
  ['127.0.0.1::6379', { exposed: ['6379/tcp'], bindings: { '6379/tcp': any('', '127.0.0.1') } }],
  ['[::1]:8080:80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('8080', '::1') } }],
  ['[::]::80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('', '::') } }],
  ['::1:8080:80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('8080', '::1') } }],
  ['5353:53/udp', { exposed: ['53/udp'], bindings: { '53/udp': any('5353') } }],
  ['53/UDP', { exposed: ['53/udp'], bindings: { '53/udp': any() } }],
  ['80/tcp', { exposed: ['80/tcp'], bindings: { '80/tcp': any() } }],
  ['80/', { exposed: ['80/tcp'], bindings: { '80/tcp': any() } }],
  ['1:65535', { exposed: ['65535/tcp'], bindings: { '65535/tcp': any('1') } }],
  [
    '8000-8002:8000-8002',
    { exposed: ['8000/tcp', '8001/tcp', '8002/tcp'], bindings: { '8000/tcp': any('8000'), '8001/tcp': any('8001'), '8002/tcp': any('8002') } },
  ],
  ['9000-9001:80-81/udp', { exposed: ['80/udp', '81/udp'], bindings: { '80/udp': any('9000'), '81/udp': any('9001') } }],
  ['8000-8002:80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('8000-8002') } }],
  ['127.0.0.1:8000-8002:80', { exposed: ['80/tcp'], bindings: { '80/tcp': any('8000-8002', '127.0.0.1') } }],
  ['7000-7001', { exposed: ['7000/tcp', '7001/tcp'], bindings: { '7000/tcp': any(), '7001/tcp': any() } }],
  ['0.0.0.0::7000-7001', { exposed: ['7000/tcp', '7001/tcp'], bindings: { '7000/tcp': any('', '0.0.0.0'), '7001/tcp': any('', '0.0.0.0') } }],
  // Host port 0 is a random one (docker's -p 0:6379, what testcontainers sends).
  ['0:6379', { exposed: ['6379/tcp'], bindings: { '6379/tcp': any('0') } }],
  ['127.0.0.1:0:6379', { exposed: ['6379/tcp'], bindings: { '6379/tcp': any('0', '127.0.0.1') } }],
];

for (const [spec, want] of good) {
  test(`-p ${spec} reads as docker reads it`, (t) => {
    t.deepEqual(parsePublish(spec), want);
  });
}

const bad: string[] = [
  '', // empty
  '   ',
  '0', // port 0
  '80:0', // container port 0
  '65536',
  '65536:80',
  'abc',
  'abc:80',
  '80:abc',
  '80:80:80:80', // "80:80" is not an IP
  '1.2.3:80:80', // not an IP
  '256.1.1.1:80:80',
  'localhost:80:80', // a name, not an IP literal (docker refuses it too)
  '[::1:80:80', // unclosed bracket
  '[1.2.3]:80:80',
  'fe80::1%eth0:80:80', // a zone is not an IP literal
  '8000-8001:80-82', // sides differ in length
  '8080:80-82', // container range, one host port
  '8002-8000:80', // reversed
  '8000:8002-8000',
  '80-', // half a range
  '-80',
  '80-81-82',
  '80/sctp', // berth does not do sctp
  '80/icmp', // unknown protocol
  '80/tcp/udp',
  '127.0.0.1:80:', // no container port
  '80:/tcp',
];

for (const spec of bad) {
  test(`-p ${JSON.stringify(spec)} is refused with a hint`, (t) => {
    const e = t.throws(() => parsePublish(spec), { instanceOf: InvalidArgumentError });
    t.is(e?.code, 'INVALID_ARGUMENT');
    t.truthy(e?.hint);
  });
}

test('-p 80/sctp says berth publishes tcp and udp', (t) => {
  const e = t.throws(() => parsePublish('80/sctp'), { instanceOf: InvalidArgumentError });
  t.regex(e?.hint ?? '', /udp/);
});

test('--expose reads a port or a range, tcp by default', (t) => {
  t.deepEqual(parseExpose('80'), ['80/tcp']);
  t.deepEqual(parseExpose('53/udp'), ['53/udp']);
  t.deepEqual(parseExpose('7000-7002/udp'), ['7000/udp', '7001/udp', '7002/udp']);
});

for (const spec of ['', '0', '65536', 'abc', '8080:80', '7002-7000', '80/sctp', '80/icmp']) {
  test(`--expose ${JSON.stringify(spec)} is refused with a hint`, (t) => {
    const e = t.throws(() => parseExpose(spec), { instanceOf: InvalidArgumentError });
    t.truthy(e?.hint);
  });
}

test('createBody merges -p and --expose into ExposedPorts and PortBindings, as docker run does', (t) => {
  const b = createBody('nginx', [], {
    restart: 'no',
    publish: ['8080:80', '127.0.0.1:8081:80', '53/udp'],
    expose: ['9000-9001', '80'],
    publishAll: true,
    network: 'bridge',
  });
  t.deepEqual(b.ExposedPorts, { '80/tcp': {}, '53/udp': {}, '9000/tcp': {}, '9001/tcp': {} });
  t.deepEqual(b.HostConfig?.PortBindings, {
    '80/tcp': [{ HostIp: '', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '8081' }],
    '53/udp': [{ HostIp: '', HostPort: '' }],
  });
  t.is(b.HostConfig?.PublishAllPorts, true);
  t.is(b.HostConfig?.NetworkMode, 'bridge');
});

test('createBody without port flags leaves the image EXPOSE alone and sets no network mode', (t) => {
  const b = createBody('nginx', [], { restart: 'no' });
  t.false('ExposedPorts' in b);
  t.false('PortBindings' in (b.HostConfig ?? {}));
  t.false('NetworkMode' in (b.HostConfig ?? {}));
  t.is(b.HostConfig?.PublishAllPorts, false);
  t.is(createBody('nginx', [], { restart: 'no', net: 'host' }).HostConfig?.NetworkMode, 'host');
});

test('createBody refuses a bad -p before anything is sent', (t) => {
  t.throws(() => createBody('nginx', [], { restart: 'no', publish: ['80:80:80:80'] }), { instanceOf: InvalidArgumentError });
});

test('ps PORTS: published, then unpublished, as docker prints them', (t) => {
  t.is(
    formatPortsSummary([
      { PrivatePort: 443, Type: 'tcp' },
      { IP: '0.0.0.0', PrivatePort: 6379, PublicPort: 32768, Type: 'tcp' },
      { IP: '127.0.0.1', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    ]),
    '443/tcp, 127.0.0.1:8080->80/tcp, 0.0.0.0:32768->6379/tcp',
  );
  t.is(formatPortsSummary([]), '');
  t.is(formatPortsSummary([{ IP: '0.0.0.0', PrivatePort: 6379, PublicPort: 32768, Type: 'tcp' }]), '0.0.0.0:32768->6379/tcp');
});

test('ps PORTS groups consecutive ports published on the same numbers, per IP and protocol', (t) => {
  t.is(
    formatPortsSummary([
      { IP: '0.0.0.0', PrivatePort: 8001, PublicPort: 8001, Type: 'tcp' },
      { IP: '0.0.0.0', PrivatePort: 8000, PublicPort: 8000, Type: 'tcp' },
      { IP: '0.0.0.0', PrivatePort: 8002, PublicPort: 8002, Type: 'tcp' },
      { PrivatePort: 7000, Type: 'udp' },
      { PrivatePort: 7001, Type: 'udp' },
      { PrivatePort: 7003, Type: 'udp' },
    ]),
    '7000-7001/udp, 7003/udp, 0.0.0.0:8000-8002->8000-8002/tcp',
  );
});

test('ps PORTS brackets IPv6 addresses like net.JoinHostPort', (t) => {
  t.is(
    formatPortsSummary([
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    ]),
    '0.0.0.0:8080->80/tcp, [::]:8080->80/tcp',
  );
});

const inspectPorts = {
  '6379/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }, { HostIp: '::', HostPort: '32768' }],
  '80/tcp': null,
  '10000/tcp': [{ HostIp: '127.0.0.1', HostPort: '10000' }],
  '53/udp': [{ HostIp: '0.0.0.0', HostPort: '5353' }],
  '53/tcp': [{ HostIp: '0.0.0.0', HostPort: '5354' }],
};

test('port lists every mapping, sorted by port number then protocol', (t) => {
  t.deepEqual(formatPortLines(inspectPorts), [
    '53/tcp -> 0.0.0.0:5354',
    '53/udp -> 0.0.0.0:5353',
    '6379/tcp -> 0.0.0.0:32768',
    '6379/tcp -> [::]:32768',
    '10000/tcp -> 127.0.0.1:10000',
  ]);
  t.deepEqual(formatPortLines(null), []);
});

test('port with a private port prints just the host addresses (tcp when no protocol)', (t) => {
  t.deepEqual(formatPortLines(inspectPorts, '6379'), ['0.0.0.0:32768', '[::]:32768']);
  t.deepEqual(formatPortLines(inspectPorts, '6379/tcp'), ['0.0.0.0:32768', '[::]:32768']);
  t.deepEqual(formatPortLines(inspectPorts, '53/udp'), ['0.0.0.0:5353']);
});

test('port with an unpublished or unknown private port gives no lines (the command reports it)', (t) => {
  t.deepEqual(formatPortLines(inspectPorts, '80'), []);
  t.deepEqual(formatPortLines(inspectPorts, '6379/udp'), []);
  t.deepEqual(formatPortLines(inspectPorts, '81'), []);
});

test('port refuses a private port that is not a number', (t) => {
  const e = t.throws(() => formatPortLines(inspectPorts, 'abc'), { instanceOf: InvalidArgumentError });
  t.truthy(e?.hint);
});
