import test from 'ava';
import { BtrfsDriver } from '../../volumes/drivers/btrfs/btrfs';
import { MiB } from './helpers';
import { volumeDriverSuite } from './volume-driver-suite';

// The shared volume-driver suite on btrfs; the btrfs-only cases (pool, quota, crash
// adoption, nested subvolumes) are in btrfs-pool.test.ts, so the two halves run on both ava
// workers. The data root here is on ext4, so every case runs on its own loop-backed pool file.
const POOL = 512 * MiB;
const open = (root: string, poolSize = POOL) => BtrfsDriver.open(root, { poolSize });

volumeDriverSuite(test, 'btrfs', (root) => open(root), { driver: 'btrfs', poolSize: POOL });
