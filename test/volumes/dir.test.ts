import test from 'ava';
import { DirDriver } from '../../volumes/drivers/dir/dir';
import { setup } from './helpers';
import { volumeDriverSuite } from './volume-driver-suite';

// Plain directories on the host filesystem (ext4 here: copies; reflinks on xfs/btrfs).
volumeDriverSuite(test, 'dir', (root) => DirDriver.open(root), { driver: 'dir' });

test('dir: a size limit is refused, since plain directories cannot enforce one', async (t) => {
  const { d } = await setup(t, (root) => DirDriver.open(root));
  const err = await t.throwsAsync(d.create('sized', { size: 1024 * 1024 }), { code: 'FAILED_PRECONDITION' });
  t.truthy((err as { hint?: string }).hint);
  await t.throwsAsync(d.inspect('sized'), { code: 'NOT_FOUND' });
});
