/**
 * The `dir` volume driver: a volume is a plain directory, on any filesystem.
 *
 * Snapshots and clones are copies made by `cp -a --reflink=auto`: coreutils shares blocks
 * where the filesystem can (xfs, btrfs: then a copy costs metadata only) and copies bytes
 * elsewhere (ext4: the cost grows with the data). Snapshots are read-only by convention
 * only: nothing stops root from writing into one, but no berth code does. Restore copies
 * the snapshot and swaps the copy in atomically (see VolumeStore). A size limit cannot be
 * enforced here, so `size` is refused.
 *
 * Layout: everything under `root` (see volumes/drivers/base/volume-store.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VolumeStore } from '../base/volume-store';
import { tool } from '../../shared/host-tool';

export class DirDriver extends VolumeStore {
  readonly name = 'dir';
  protected readonly enforcesSize = false;

  private constructor(root: string) {
    super(root, root);
  }

  /** Open (or create) a dir driver in `root`, cleaning up what a crash left. */
  static async open(root: string): Promise<DirDriver> {
    const dir = path.resolve(root);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const d = new DirDriver(dir);
    await d.init();
    return d;
  }

  protected async makeData(dest: string): Promise<void> {
    await fs.promises.mkdir(dest, { mode: 0o755 });
  }

  protected async copyData(src: string, dest: string): Promise<void> {
    // -T: dest is the copy itself, never a directory to copy into.
    await tool('cp', ['-a', '--reflink=auto', '-T', '--', src, dest]);
  }

  protected async removeData(p: string): Promise<void> {
    await fs.promises.rm(p, { recursive: true, force: true });
  }
}
