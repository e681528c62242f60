import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expandEnv, parseBytes, parseCpus, parseFilters, parseKeyValues, parseLabels, parseRestart, readEnvFile } from '../../src/cli/parse';
import { ago, formatItems, humanSize, render, shortId, table } from '../../src/cli/format';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';

// The CLI's flag-value parsers and its output formatting (the Go-template subset of
// --format), as pure functions: what docker accepts and prints, and a typed error with a
// hint for what it refuses.

const refused = { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' } as const;

test('sizes take docker binary units, with or without b/ib, and refuse the rest naming the flag', (t) => {
  t.is(parseBytes('1024'), 1024);
  t.is(parseBytes('512m'), 512 * 1024 ** 2);
  t.is(parseBytes('1g'), 1024 ** 3);
  t.is(parseBytes('1.5GB'), 1.5 * 1024 ** 3);
  t.is(parseBytes('64KiB'), 64 * 1024);
  t.is(parseBytes('2b'), 2);
  const e = t.throws(() => parseBytes('lots', '--shm-size'), refused);
  t.regex(e!.message, /--shm-size/);
  t.truthy((e as InvalidArgumentError).hint);
  t.throws(() => parseBytes('-1m'), refused);
  t.throws(() => parseBytes('1x'), refused);
});

test('--cpus becomes NanoCpus; zero, negatives and words are refused', (t) => {
  t.is(parseCpus('1.5'), 1_500_000_000);
  t.is(parseCpus('0.01'), 10_000_000);
  for (const bad of ['0', '-1', 'two', '1e3', '']) t.throws(() => parseCpus(bad), refused, bad);
});

test('--restart: no, always, unless-stopped and on-failure[:N]; a count on another policy is refused', (t) => {
  t.deepEqual(parseRestart('no'), { Name: 'no', MaximumRetryCount: 0 });
  t.deepEqual(parseRestart('always'), { Name: 'always', MaximumRetryCount: 0 });
  t.deepEqual(parseRestart('unless-stopped'), { Name: 'unless-stopped', MaximumRetryCount: 0 });
  t.deepEqual(parseRestart('on-failure'), { Name: 'on-failure', MaximumRetryCount: 0 });
  t.deepEqual(parseRestart('on-failure:5'), { Name: 'on-failure', MaximumRetryCount: 5 });
  for (const bad of ['always:3', 'sometimes', 'on-failure:x', 'ON-FAILURE', '']) t.throws(() => parseRestart(bad), refused, bad);
});

test('-e KEY takes the value from the environment (dropped when unset); --env-file skips comments and blanks', (t) => {
  process.env.BERTH_PARSE_TEST = 'from-env';
  delete process.env.BERTH_PARSE_UNSET;
  t.is(expandEnv('A=b=c'), 'A=b=c');
  t.is(expandEnv('BERTH_PARSE_TEST'), 'BERTH_PARSE_TEST=from-env');
  t.is(expandEnv('BERTH_PARSE_UNSET'), undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-envfile-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'env');
  fs.writeFileSync(file, '# a comment\n\nA=1\n   B=two words\nBERTH_PARSE_TEST\nBERTH_PARSE_UNSET\nEMPTY=\n');
  t.deepEqual(readEnvFile(file), ['A=1', 'B=two words', 'BERTH_PARSE_TEST=from-env', 'EMPTY=']);
  t.throws(() => readEnvFile(path.join(dir, 'missing')), { instanceOf: NotFoundError, code: 'NOT_FOUND' });
});

test('labels, key=value options and filters parse as docker does; a key-less option or filter is refused', (t) => {
  t.deepEqual(parseLabels(['a=1', 'b', 'c=x=y', 'a=2']), { a: '2', b: '', c: 'x=y' });
  t.deepEqual(parseKeyValues(['max-size=10m', 'max-file=3'], '--log-opt'), { 'max-size': '10m', 'max-file': '3' });
  const e = t.throws(() => parseKeyValues(['=v'], '--log-opt'), refused);
  t.regex(e!.message, /--log-opt/);
  t.throws(() => parseKeyValues(['novalue'], '--opt'), refused);
  t.deepEqual(parseFilters(['status=exited', 'label=a=b', 'status=created']), { status: ['exited', 'created'], label: ['a=b'] });
  t.throws(() => parseFilters(['=exited']), refused);
  t.throws(() => parseFilters(['status']), refused);
});

test('sizes, ids and ages print as the docker CLI prints them', (t) => {
  t.is(humanSize(0), '0B');
  t.is(humanSize(999), '999B');
  t.is(humanSize(4_260_000), '4.26MB');
  t.is(humanSize(1_000_000_000), '1GB');
  t.is(humanSize(1234), '1.23kB');
  t.is(shortId('sha256:0123456789abcdef0123'), '0123456789ab');
  t.is(shortId('fedcba9876543210'), 'fedcba987654');
  const now = Date.UTC(2026, 0, 1);
  t.is(ago(now / 1000 - 90, now), 'About a minute ago');
  t.is(ago(now / 1000 - 3 * 3600, now), '3 hours ago');
  t.is(ago(now / 1000 + 5, now), 'Less than a second ago', 'a clock skew into the future is not negative');
});

test('table pads each column to its widest cell plus three spaces and trims line ends', (t) => {
  t.is(table(['ID', 'NAME'], [['a', 'x'], ['bbbb', '']]), 'ID     NAME\na      x\nbbbb\n');
});

test('--format: fields, nested fields, json of a field or the whole item, tabs, and a table header', (t) => {
  const items = [
    { ID: 'abc', Name: 'one', State: { Running: true, Pid: 7 }, Labels: { a: '1' }, Gone: null },
    { ID: 'def', Name: 'two', State: { Running: false, Pid: 0 }, Labels: {}, Gone: null },
  ];
  t.is(formatItems('{{.ID}} {{.State.Running}}', items), 'abc true\ndef false\n');
  t.is(formatItems('{{ .Name }}\\t{{.State.Pid}}', items), 'one\t7\ntwo\t0\n');
  t.is(formatItems('{{json .Labels}}', items), '{"a":"1"}\n{}\n');
  t.is(formatItems('{{.Labels}}', items.slice(0, 1)), '{"a":"1"}\n', 'an object prints as JSON');
  t.is(formatItems('{{.Gone}}', items.slice(0, 1)), '<no value>\n');
  t.is(formatItems('{{json .}}', items.slice(1, 2)), JSON.stringify(items[1]) + '\n');
  t.is(formatItems('json', items), items.map((i) => JSON.stringify(i)).join('\n') + '\n');
  t.is(formatItems('json', []), '');
  t.is(formatItems('{{.ID}}', []), '');
  t.is(formatItems('table {{.ID}}\\t{{.State.Pid}}', items), 'ID    STATE.PID\nabc   7\ndef   0\n');
  t.is(render('{{.Name}}!', items[0]), 'one!');
});

test('--format: a field the item lacks is refused naming it, with the fields it has as the hint', (t) => {
  const e = t.throws(() => formatItems('{{.Nope}}', [{ ID: 'x', Name: 'y' }]), refused);
  t.regex(e!.message, /Nope/);
  t.regex((e as InvalidArgumentError).hint ?? '', /ID, Name/);
  t.throws(() => formatItems('{{.ID.Deeper}}', [{ ID: 'x' }]), refused);
});

test('--format: a template action outside the supported subset is refused, never printed as is', (t) => {
  for (const tpl of ['{{upper .Name}}', '{{.Name | printf "%s"}}', '{{range .Labels}}x{{end}}', '{{if .Name}}y{{end}}', '{{"\\t"}}']) {
    const e = t.throws(() => formatItems(tpl, [{ Name: 'n', Labels: {} }]), refused, tpl);
    t.truthy((e as InvalidArgumentError).hint, tpl);
  }
});
