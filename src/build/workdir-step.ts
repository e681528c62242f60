import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { deepestDir } from './copy-step';
import type { Step } from './dockerfile';
import type { StageState } from './instructions';
import type { StepDeps } from './ports';
import { relJoin } from './sources';
import { advance, idleContainer, short, stepBase, useCache } from './step-cache';

/**
 * WORKDIR makes its directory, as Docker's builder does since 1.13: owned by root (whatever
 * USER says), mode 0755, committed as the step's layer, even when no RUN follows. A
 * directory that is already there makes a config-only step (0 B in `docker history`).
 * The stage's config already holds the new WorkingDir (applyMetadata).
 */
export async function workdirStep(d: StepDeps, st: StageState, step: Step): Promise<void> {
  const dir = st.config.WorkingDir || '/';
  const createdBy = `/bin/sh -c #(nop) WORKDIR ${dir}`;
  const key = `workdir\n${dir}\n${JSON.stringify(st.config)}`;
  if (await useCache(d, st, key, createdBy)) return;
  const parent = await stepBase(d, st);
  const cid = await idleContainer(d, parent);
  try {
    const { putDir, missing } = await deepestDir(d, cid, dir, step.line);
    if (missing.length === 0) {
      await advance(d, st, key, (await d.images.commitImageConfig(st.image, { names: [], config: st.config, createdBy })).id);
    } else {
      const pack = tar.pack();
      for (let i = 1; i <= missing.length; i++) pack.entry({ name: relJoin(...missing.slice(0, i)) + '/', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: new Date() });
      pack.finalize();
      await d.files.put(cid, putDir, Readable.from(pack as AsyncIterable<Buffer>));
      const { Id } = await d.containers.commit(cid, { replaceConfig: true, config: st.config, createdBy, pause: false });
      await advance(d, st, key, Id);
    }
  } finally {
    await d.containers.remove(cid, { force: true, volumes: true });
  }
  d.say(` ---> ${short(st.image as string)}\n`);
}
