/**
 * Property-based fuzzing of POST /containers/create (issue 18), with fast-check: random
 * bodies — every create field and unknown ones, given random JSON values, plus wholly
 * random JSON and non-JSON — thrown at a real daemon. Three properties: no answer is a 500
 * (or anything but 201 and a 4xx), the daemon keeps answering /_ping, and no record is
 * half-made: what the listing shows is exactly what was created, on disk too, and the real
 * docker CLI can still list and inspect all of it.
 */
import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rawCall } from '../helpers/raw-api';
import { TestDaemon } from '../helpers/daemon';
import { CONFIG_FIELDS, HOST_CONFIG_FIELDS } from '../../src/engine/create-fields';

let d: TestDaemon;

test.before(async () => {
  d = await TestDaemon.start({ args: ['--volume-driver', 'dir'] });
});

test.after.always(async () => {
  await d?.stop();
});


const call = (method: string, p: string, body?: string) => rawCall(d.socket, method, p, body);

/** Values a client might send, right and wrong: JSON of every type, and strings the fields take. */
const plausible = fc.constantFrom('true', 'sleep', '/tmp', '/tmp:/mnt', '/tmp:/mnt:ro', 'vol:/data', 'bridge', 'none', 'host', 'SIGTERM', 'A=b', '80/tcp', 'rw,size=1m', 'no', 'always', 'on-failure', 'nofile', '');
const leaf = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 12 }), plausible, fc.constantFrom(1e300, -1, 0, 2 ** 53, 65));
const value = fc.oneof(
  { weight: 3, arbitrary: leaf },
  { weight: 2, arbitrary: fc.array(fc.oneof(leaf, plausible), { maxLength: 4 }) },
  { weight: 2, arbitrary: fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), plausible), leaf, { maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const configKeys = fc.constantFrom(...Object.keys(CONFIG_FIELDS).filter((k) => k !== 'Image'), 'Bogus');
const hostKeys = fc.constantFrom(...Object.keys(HOST_CONFIG_FIELDS), 'Bogus');

const body = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .record({
        config: fc.dictionary(configKeys, value, { maxKeys: 4 }),
        host: fc.option(fc.dictionary(hostKeys, value, { maxKeys: 4 }), { nil: undefined }),
        networking: fc.option(fc.oneof(value, fc.record({ EndpointsConfig: fc.dictionary(fc.constantFrom('bridge', 'none', 'x'), value, { maxKeys: 2 }) })), { nil: undefined }),
      })
      .map(({ config, host, networking }) =>
        JSON.stringify({ Image: 'busybox', Cmd: ['true'], ...config, ...(host ? { HostConfig: host } : {}), ...(networking !== undefined ? { NetworkingConfig: networking } : {}) }),
      ),
  },
  // Mostly right: a field or two with values of the kinds the fields take, so many are made.
  {
    weight: 4,
    arbitrary: fc
      .record({ config: fc.dictionary(configKeys, fc.oneof(plausible, fc.array(plausible, { maxLength: 3 }), fc.boolean()), { maxKeys: 2 }), host: fc.dictionary(hostKeys, fc.oneof(plausible, fc.array(plausible, { maxLength: 2 }), fc.nat(1 << 30)), { maxKeys: 2 }) })
      .map(({ config, host }) => JSON.stringify({ Image: 'busybox', Cmd: ['true'], ...config, HostConfig: host })),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

test('random create bodies: never a 500, the daemon stays responsive, and no record is half-made', async (t) => {
  const created = new Set<string>();
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(body, async (b) => {
      const a = await call('POST', '/v1.41/containers/create', b);
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (a.status === 201) created.add(a.json.Id as string);
      else if (!(a.status >= 400 && a.status < 500)) throw new Error(`answered ${a.status}: ${JSON.stringify(a.json)} for ${b}`);
      else if (typeof a.json.code !== 'string' || typeof a.json.hint !== 'string') throw new Error(`a refusal without code or hint: ${JSON.stringify(a.json)}`);
      const t0 = Date.now();
      const ping = await call('GET', '/_ping');
      if (ping.status !== 200 || Date.now() - t0 > 5000) throw new Error(`/_ping answered ${ping.status} after ${Date.now() - t0} ms`);
    }),
    { numRuns: 200 },
  );
  t.log(`answers: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(', ')}`);
  t.true(created.size > 0, 'some random bodies were valid and made containers');

  const listed = await call('GET', '/v1.41/containers/json?all=1');
  t.is(listed.status, 200);
  const want = [...created].sort();
  t.deepEqual((listed.json as unknown as Array<{ Id: string }>).map((c) => c.Id).sort(), want);
  const onDisk = fs.readdirSync(path.join(d.root, 'containers')).filter((n) => /^[0-9a-f]{64}$/.test(n) || /^(new|rm)-/.test(n));
  t.deepEqual(onDisk.sort(), want, 'no half-made container directory is left');
  const ps = await d.docker(['ps', '-a', '-q', '--no-trunc']);
  t.is(ps.code, 0, ps.stderr);
  t.is(ps.stdout.trim().split('\n').filter(Boolean).length, created.size);
  if (created.size) {
    const inspect = await d.docker(['inspect', ...created]);
    t.is(inspect.code, 0, inspect.stderr);
  }
  for (const id of created) t.is((await call('DELETE', `/v1.41/containers/${id}?force=1&v=1`)).status, 204);
});
