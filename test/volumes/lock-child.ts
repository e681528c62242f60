/**
 * A process that dies holding a volume's lock: opens ROOT with the dir driver and creates
 * NAME; started with BERTH_FAULT=volume.build.filled it stops (lock held, the new volume
 * whole in staging) until killed.
 *   node lock-child.js ROOT NAME
 */
import { openDriver } from '../../volumes/drivers/select';

async function main(): Promise<void> {
  const [root, name] = process.argv.slice(2);
  const d = await openDriver(root, { driver: 'dir' });
  await d.create(name);
  await d.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
