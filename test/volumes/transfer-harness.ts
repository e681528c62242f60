/**
 * The registry-transfer tests' fixture: a temp dir and a real registry (Debian's
 * docker-registry on loopback) for one test, and transfer contexts over drivers opened in
 * it; drivers, sessions and the registry are closed in teardown, and a pool mount or loop
 * device a driver left fails the test (test/helpers/leaks.ts).
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
import { releaseRoot } from '../helpers/leaks';

export async function transferHarness(t: ExecutionContext, prefix = 'berth-volreg-') {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  const reg = await TestRegistry.start();
  const drivers: VolumeDriver[] = [];
  const sessions: RegistrySession[] = [];
  t.teardown(async () => {
    const problems: string[] = [];
    for (const s of sessions) s.close();
    for (const d of drivers) await d.close().catch((e: Error & { code?: string }) => problems.push(`closing a ${d.name} driver failed: ${e.code ?? ''} ${e.message}`));
    await reg.stop();
    await releaseRoot(`the transfer test's ${tmp}`, { root: tmp }, problems);
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
