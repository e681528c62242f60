/**
 * The registry-transfer tests' fixture: a temp dir and a real registry (Debian's
 * docker-registry on loopback) for one test, and transfer contexts over drivers opened in
 * it; drivers, sessions, the registry and any pool mount or loop device are undone in
 * teardown.
 */
import type { ExecutionContext } from 'ava';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { VolumeDriver } from '../../volumes/drivers/driver';
import { RegistrySession } from '../../src/images/registry/client';
import { endpointFor } from '../../src/images/registry/endpoint';
import type { RegistryMessage } from '../../src/images/registry/service';
import type { TransferContext } from '../../src/volumes/registry-transfer';
import { TestRegistry } from '../helpers/registry';
import { cleanupHost } from './helpers';

export async function transferHarness(t: ExecutionContext, prefix = 'berth-volreg-') {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  const reg = await TestRegistry.start();
  const drivers: VolumeDriver[] = [];
  const sessions: RegistrySession[] = [];
  t.teardown(async () => {
    for (const s of sessions) s.close();
    for (const d of drivers) await d.close().catch(() => undefined);
    await reg.stop();
    cleanupHost(tmp); // a btrfs driver's pool mount and loop device
    await fsp.rm(tmp, { recursive: true, force: true });
  });
  /** A transfer context over `d`, opened at `<tmp>/<name>`; the driver is closed in teardown. */
  const ctxOf = (d: VolumeDriver, name: string, progress?: (m: RegistryMessage) => void): TransferContext => {
    drivers.push(d);
    const session = new RegistrySession(endpointFor(reg.host), undefined, { attempts: 1 });
    sessions.push(session);
    return { session, driver: d, work: path.join(tmp, name, 'transfer'), progress };
  };
  return { tmp, reg, ctxOf };
}
