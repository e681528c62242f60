import test from 'ava';
import { TestDaemon } from '../helpers/daemon';
import { openEnv } from './helpers';
import { imageServiceSuite } from './image-service-suite';

/**
 * The image service suite, run twice: against the in-process image store (a fresh data
 * root per case) and through a real daemon's socket client (one shared daemon for the
 * file; the suite's cases keep to repositories of their own).
 */

imageServiceSuite(test, 'in-process', async (t) => (await openEnv(t)).store);

let daemon: Promise<TestDaemon> | undefined;
test.after.always(async () => {
  await (await daemon?.catch(() => undefined))?.stop();
});

imageServiceSuite(test, 'socket client', async () => {
  daemon ??= TestDaemon.start();
  return (await daemon).images;
});
