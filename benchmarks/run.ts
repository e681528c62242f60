import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchImport } from './import';
import { benchNetwork } from './network';
import { benchUserNetworks } from './user-networks';
import { benchIdleMemory, benchRun, benchStop } from './run-container';
import { benchTty } from './tty';
import { benchVolumes } from './volumes';
import { benchCp, benchStats } from './cp-stats';
import { benchBranching } from './branching';
import { benchSoak } from './soak';
import { benchBurst } from './burst';
import { benchRegistry } from './registry';
import { benchVolumeChunks, benchVolumeRegistry } from './volume-registry';
import { benchBuild } from './build';
import { benchSpeed } from './speed';
import { benchIo } from './io-speed';
import { benchMonitorFaults } from './monitor-faults';
import { mountsUnder } from '../test/helpers/mounts';

/**
 * `npm run bench`: every benchmark, each measuring berth side by side with its reference
 * in the same run and printing the ratio. `npm run bench -- import` runs one.
 * Work files go under /var/tmp/berth-bench-* (the same filesystem as the default data root).
 */
const benches: Record<string, (work: string) => Promise<void>> = {
  import: benchImport,
  run: benchRun,
  stop: benchStop,
  'monitor-faults': benchMonitorFaults,
  memory: benchIdleMemory,
  volumes: benchVolumes,
  network: benchNetwork,
  'user-networks': benchUserNetworks,
  tty: benchTty,
  cp: benchCp,
  stats: benchStats,
  branching: benchBranching,
  soak: benchSoak,
  burst: benchBurst,
  registry: benchRegistry,
  'volume-chunks': benchVolumeChunks,
  'volume-registry': benchVolumeRegistry,
  build: benchBuild,
  speed: benchSpeed,
  io: benchIo,
};

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  for (const [name, fn] of Object.entries(benches)) {
    if (only.length && !only.includes(name)) continue;
    const work = fs.mkdtempSync(path.join('/var/tmp', `berth-bench-${name}-`));
    try {
      await fn(work);
    } finally {
      removeWork(work);
    }
  }
}

/**
 * A bench that died can leave containers running and their mounts under its work
 * directory: deleting it then would take runc's state and the data from under them. Its
 * mounts are unmounted first, deepest first; if one will not go, the directory is left in
 * place and named, never deleted through a mount.
 */
function removeWork(work: string): void {
  for (const point of mountsUnder(work)) spawnSync('umount', [point], { stdio: 'ignore' });
  const left = mountsUnder(work);
  if (left.length) {
    console.error(`bench: left ${work} in place: still mounted under it: ${left.join(', ')} (stop what uses them, unmount, then remove it)`);
    process.exitCode = 1;
    return;
  }
  fs.rmSync(work, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
