import * as fs from 'node:fs';

/**
 * Fault points, for crash tests that must prove they crashed in the middle of an
 * operation rather than before it started or after it ended.
 *
 * Code marks the steps between its crash-relevant writes: `faultPoint('volume.restore.after-rename')`.
 * In production this costs one comparison: the environment is read once, when this module
 * loads, and no step is armed. A test starts a process with `BERTH_FAULT=<step>`; when
 * that step is reached the process writes `faultReachedLine(step)` to stderr and stops
 * dead (the whole thread blocks: no timer, request or stream moves on), so the test can
 * see the debris of exactly that moment on disk, SIGKILL the process there, and check that
 * the next start cleans it up.
 *
 * The steps, in the order an operation passes them:
 *   content.blob.synced        a blob is whole in content/ingest, not yet renamed into blobs/
 *   image.layer.applied        a layer is unpacked into its extract-* snapshot, not committed
 *   image.before-record        an import's or load's blobs and layers are in place; no image names them
 *   image.load.recorded        a load's images are recorded (its garbage not yet collected)
 *   volume.build.filled        a volume being created, cloned or imported is whole in staging/new-*
 *   volume.build.renamed       it is renamed into volumes/<name>; no record names it yet
 *   volume.snapshot.copied     a snapshot's copy is made (.new-* on dir, in place on btrfs); no record names it
 *   volume.restore.staged      a restore's new copy is whole (new-*); no journal yet
 *   volume.restore.after-rename  the old _data is renamed aside and the new copy not yet into place
 *   container.create.mounts-made  a create's volumes (clones of VOL@SNAP, anonymous ones) exist; no container record yet
 */
const ARMED: string | undefined = process.env.BERTH_FAULT || undefined;

export function faultPoint(step: string): void {
  if (ARMED !== step) return;
  fs.writeSync(2, `${faultReachedLine(step)} (pid ${process.pid})\n`);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0); // until SIGKILL
}

/** What a process prints when it stops at `step`. */
export function faultReachedLine(step: string): string {
  return `berth: fault point ${step} reached; paused until killed`;
}
