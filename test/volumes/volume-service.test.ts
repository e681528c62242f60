import test from 'ava';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDriver } from '../../volumes/drivers/select';
import { Volumes } from '../../src/volumes/volumes';
import { TestDaemon } from '../helpers/daemon';
import { volumeServiceSuite } from './volume-service-suite';

/**
 * The volume service suite, run twice: against the in-process service (a fresh one over
 * the dir driver per case, as berthd wires it) and through a real daemon's socket client
 * (one shared daemon for the file; the suite's cases keep to names of their own).
 */

volumeServiceSuite(test, 'in-process', async (t) => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-volsvc-'));
  const svc = new Volumes(() => openDriver(root, { driver: 'dir' }), 'dir');
  t.teardown(async () => {
    await svc.close();
    await fsp.rm(root, { recursive: true, force: true });
  });
  return { svc, driver: 'dir' };
});

let daemon: Promise<TestDaemon> | undefined;
test.after.always(async () => {
  await (await daemon?.catch(() => undefined))?.stop();
});

volumeServiceSuite(test, 'socket client', async () => {
  daemon ??= TestDaemon.start({ args: ['--volume-driver', 'dir'] });
  return { svc: (await daemon).volumes, driver: 'dir' };
});
