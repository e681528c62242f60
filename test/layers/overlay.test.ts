import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { snapshotterSuite } from './snapshotter-suite';

// Real overlayfs on the host kernel: needs root and the overlay module.
snapshotterSuite(test, 'overlay', (root) => OverlaySnapshotter.open(root));

test('overlay: a data root with a comma or colon is refused, as overlay options could not name it', async (t) => {
  const base = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-layers-'));
  t.teardown(() => fs.promises.rm(base, { recursive: true, force: true }));
  await t.throwsAsync(OverlaySnapshotter.open(path.join(base, 'a:b')), { code: 'INVALID_ARGUMENT' });
  await t.throwsAsync(OverlaySnapshotter.open(path.join(base, 'a,b')), { code: 'INVALID_ARGUMENT' });
});
