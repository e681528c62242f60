import test from 'ava';
import * as fs from 'node:fs';
import Docker from 'dockerode';
import { TestDaemon } from '../helpers/daemon';

/**
 * The two races of issue 14 item 6, closed by the volume gates (src/volumes/gate.ts):
 * a container created at the moment of `volume rm` or started at the moment of `restore`,
 * and a container that starts during a snapshot. Each is raced many times at once, and
 * every outcome must be one of the consistent ones.
 */

let d: TestDaemon;
let docker: Docker;
test.before(async () => {
  d = await TestDaemon.start();
  docker = new Docker({ socketPath: d.socket });
});
test.after.always(async () => {
  await d?.stop();
});

async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: { statusCode?: number; message: string } }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error) => ({ ok: false as const, error }),
  );
}

async function output(c: Docker.Container): Promise<string> {
  const b = await c.logs({ stdout: true, stderr: true });
  // no tty: strip the 8-byte stream headers
  let s = '';
  for (let i = 0; i + 8 <= b.length; ) {
    const n = b.readUInt32BE(i + 4);
    s += b.subarray(i + 8, i + 8 + n).toString();
    i += 8 + n;
  }
  return s;
}

test('a container created at the moment of volume rm: either rm sees it (CONFLICT) or the volume it mounts exists', async (t) => {
  // How long one create takes here, so the removals can be spread across its steps.
  const t0 = Date.now();
  await docker.createContainer({ name: 'race-rm-probe', Image: 'busybox', HostConfig: { Binds: ['race-rm-probe:/d'] } });
  const span = Math.max(20, Date.now() - t0);
  await docker.getContainer('race-rm-probe').remove({ v: true });
  await docker.getVolume('race-rm-probe').remove();
  const N = 40;
  await Promise.all(Array.from({ length: N }, (_, i) => docker.createVolume({ Name: `race-rm-${i}` })));
  const results: { i: number; create: Awaited<ReturnType<typeof settle>>; rm: Awaited<ReturnType<typeof settle>> }[] = [];
  for (let b = 0; b < N; b += 4) {
    results.push(
      ...(await Promise.all(
        [b, b + 1, b + 2, b + 3].map(async (i) => {
          const [create, rm] = await Promise.all([
            settle(docker.createContainer({ name: `race-rm-c${i}`, Image: 'busybox', Cmd: ['ls', '/d'], HostConfig: { Binds: [`race-rm-${i}:/d`] } })),
            // spread over the create's steps: image lookup, mounts, the record
            new Promise((r) => setTimeout(r, Math.round((span * 1.2 * i) / N))).then(() => settle(docker.getVolume(`race-rm-${i}`).remove())),
          ]);
          return { i, create, rm };
        }),
      )),
    );
  }
  let conflicts = 0;
  for (const { i, create, rm } of results) {
    t.true(create.ok, `create ${i}`);
    if (!rm.ok) {
      t.is(rm.error.statusCode, 409, `rm ${i} refused only because the container uses it: ${rm.error.message}`);
      conflicts++;
    }
    // Either way the directory the container will mount is a volume that exists now (made
    // again on first use if rm came first), not one removed after the create took it.
    const [m] = (await docker.getContainer(`race-rm-c${i}`).inspect()).Mounts;
    const v = await settle(docker.getVolume(`race-rm-${i}`).inspect());
    t.true(v.ok && v.value.Mountpoint === m.Source && fs.existsSync(m.Source), `container ${i} mounts ${m.Source}, which exists as volume race-rm-${i}`);
  }
  t.log(`${conflicts} of ${N} removals met the container (one create took ${span} ms)`);
  await Promise.all(results.map(({ i }) => docker.getContainer(`race-rm-c${i}`).remove({ v: true })));
  await Promise.all(results.map(({ i }) => docker.getVolume(`race-rm-${i}`).remove()));
});

test('a container started at the moment of restore sees the volume whole: before or after, never between', async (t) => {
  const N = 12;
  for (let i = 0; i < N; i++) {
    const v = `race-restore-${i}`;
    await docker.createVolume({ Name: v });
    const w = await docker.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'echo old > /d/f'], HostConfig: { Binds: [`${v}:/d`] } });
    await w.start();
    await w.wait();
    await w.remove();
    const s = await d.berth(['volume', 'snapshot', v, 'old']);
    t.is(s.code, 0, s.stderr);
    const w2 = await docker.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'echo new > /d/f'], HostConfig: { Binds: [`${v}:/d`] } });
    await w2.start();
    await w2.wait();
    await w2.remove();
  }
  const readers = await Promise.all(
    Array.from({ length: N }, (_, i) => docker.createContainer({ Image: 'busybox', Cmd: ['cat', '/d/f'], HostConfig: { Binds: [`race-restore-${i}:/d`] } })),
  );
  const outcomes = await Promise.all(
    readers.map(async (c, i) => {
      const [start, restore] = await Promise.all([settle(c.start()), settle(d.berth(['volume', 'restore', `race-restore-${i}`, 'old']))]);
      await c.wait();
      return { i, start, restore: restore.ok ? restore.value : undefined, out: await output(c) };
    }),
  );
  for (const o of outcomes) {
    t.true(o.start.ok, `start ${o.i}`);
    t.true(['old\n', 'new\n'].includes(o.out), `container ${o.i} read ${JSON.stringify(o.out)}`);
    if (o.restore && o.restore.code !== 0) t.regex(o.restore.stderr, /in use by running container/, `restore ${o.i} refused only for the running reader`);
  }
  for (const c of readers) await c.remove();
});

test('a container that starts during a snapshot waits for it: it is frozen with the rest or started after the snapshot was taken', async (t) => {
  const N = 10;
  for (let i = 0; i < N; i++) {
    const v = `race-snap-${i}`;
    const c = await docker.createContainer({ name: `race-snap-c${i}`, Image: 'busybox', Cmd: ['sleep', '1000'], HostConfig: { Binds: [`${v}:/d`] } });
    const [start, snap] = await Promise.all([settle(c.start()), settle(d.berth(['volume', 'snapshot', v, 'snap']))]);
    t.true(start.ok, `start ${i}`);
    t.true(snap.ok && snap.value.code === 0, `snapshot ${i}: ${snap.ok ? snap.value.stderr : snap.error.message}`);
    const info = JSON.parse((await d.berth(['volume', 'snapshots', v, '--format', 'json'])).stdout.trim().split('\n')[0]);
    const state = (await c.inspect()).State;
    const frozen = (info.Metadata.frozen as string[]).includes(c.id);
    t.true(frozen || Date.parse(state.StartedAt) >= Date.parse(info.Metadata.created), `container ${i} (started ${state.StartedAt}) was frozen, or started after the snapshot (${info.Metadata.created})`);
    await c.remove({ force: true });
  }
});
