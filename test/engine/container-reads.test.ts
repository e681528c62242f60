import test from 'ava';
import { TestDaemon } from '../helpers/daemon';
import { engineEnv } from './env';
import { containerReadsSuite } from './container-reads-suite';

/**
 * The container read-path suite, run twice: against the in-process engine (a fresh data
 * root per case, as engineEnv makes it) and through a real daemon's socket client (one
 * shared daemon for the file; the suite's cases keep to labels and names of their own).
 */

containerReadsSuite(test, 'in-process', async (t) => (await engineEnv(t)).engine);

let daemon: Promise<TestDaemon> | undefined;
test.after.always(async () => {
  await (await daemon?.catch(() => undefined))?.stop();
});

containerReadsSuite(test, 'socket client', async () => {
  daemon ??= TestDaemon.start();
  return (await daemon).containers;
});
