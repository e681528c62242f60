/**
 * A process that opens a btrfs driver, makes a volume with a file, says "ready" and waits
 * to be killed: the btrfs tests SIGKILL it to leave a mounted pool and its loop device
 * behind, as a crashed daemon would.
 *   node pool-child.js ROOT POOLSIZE
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { BtrfsDriver } from '../../volumes/drivers/btrfs/btrfs';

async function main(): Promise<void> {
  const [root, poolSize] = process.argv.slice(2);
  const d = await BtrfsDriver.open(root, { poolSize: Number(poolSize) });
  const mp = (await d.create('survivor')).mountpoint;
  await fsp.writeFile(path.join(mp, 'f'), 'written before the crash');
  await d.snapshot('survivor', 'snap1');
  process.stdout.write('ready\n');
  setInterval(() => undefined, 1000);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
