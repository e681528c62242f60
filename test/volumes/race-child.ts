/**
 * A second (and third) process for the cross-process locking case of the volume driver
 * suite: opens the same root with openDriver and alternates create/remove of one volume
 * name. Prints {"created": n, "removed": m} on stdout.
 *   node race-child.js ROOT DRIVER POOLSIZE NAME COUNT
 */
import { openDriver } from '../../volumes/drivers/select';

async function main(): Promise<void> {
  const [root, driver, poolSize, name, count] = process.argv.slice(2);
  const d = await openDriver(root, { driver: driver as 'btrfs' | 'dir', poolSize: Number(poolSize) || undefined });
  let created = 0;
  let removed = 0;
  try {
    for (let i = 0; i < Number(count); i++) {
      try {
        if (i % 2 === 0) {
          await d.create(name);
          created++;
        } else {
          await d.remove(name);
          removed++;
        }
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== 'ALREADY_EXISTS' && code !== 'NOT_FOUND') throw e;
      }
    }
  } finally {
    await d.close();
  }
  process.stdout.write(JSON.stringify({ created, removed }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
