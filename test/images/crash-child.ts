/**
 * A process that opens an image store and starts an import or load, for crash tests:
 *   node crash-child.js <root> import        import stdin (the test never ends it)
 *   node crash-child.js <root> load          load stdin
 *   node crash-child.js <root> load-file F   load file F
 * It prints 'ready' once the operation has visibly started (an ingest file, and for
 * import an extract snapshot), then waits to be SIGKILLed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { ImageStore } from '../../src/images/store';

async function main(): Promise<void> {
  const [root, mode, file] = process.argv.slice(2);
  const snapshotter = await OverlaySnapshotter.open(path.join(root, 'layers'));
  const store = await ImageStore.open({ root: path.join(root, 'images'), snapshotter, tmpDir: path.join(root, 'tmp') });
  const op =
    mode === 'import'
      ? store.importRootfs(process.stdin, { repo: 'crash:1' })
      : store.load(mode === 'load-file' ? fs.createReadStream(file) : process.stdin);
  op.then(
    () => process.stdout.write('done\n'),
    (e: Error) => process.stdout.write(`failed ${e.message}\n`),
  );
  let said = false;
  const timer = setInterval(async () => {
    const ingest = await store.content.ingests();
    const names: string[] = [];
    await snapshotter.walk((i) => {
      names.push(i.name);
    });
    const started = ingest.length > 0 && (mode !== 'import' || names.some((n) => n.startsWith('extract-')));
    if (started && !said) {
      said = true;
      process.stdout.write('ready\n');
    }
  }, 10);
  timer.unref();
  setInterval(() => undefined, 1 << 30); // stay alive until killed
}

main().catch((e) => {
  process.stderr.write(`crash-child: ${e?.stack ?? e}\n`);
  process.exit(2);
});
