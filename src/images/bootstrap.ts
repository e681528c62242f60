import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, UnavailableError } from '../../volumes/shared/errors';
import { toolProcess, ToolError } from '../../volumes/shared/host-tool';
import { DEFAULT_PATH } from './config';
import { familiarTagged, parseRepoTag } from './reference';
import type { BootstrapOptions } from './service';
import { withStaging, type BuilderContext } from './staging';

/**
 * `berth image bootstrap debian:bookworm`: a Debian base image made with debootstrap
 * (`--variant=minbase`) from a Debian mirror, packed and imported as one layer, `bash` as
 * its command. Only `debian:<suite>` references: the suite is the tag (`latest` means
 * `stable`). An image that exists is returned at once, marked cached.
 */

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

export async function bootstrapImage(opts: BootstrapOptions, ctx: BuilderContext): Promise<{ id: string; cached: boolean }> {
  const ref = parseRepoTag(opts.ref);
  if (ref.repo !== 'debian') {
    throw new InvalidArgumentError(`cannot bootstrap ${opts.ref}: only debian:<suite> images are made with debootstrap`, {
      hint: 'ask for debian:<suite>, e.g. debian:bookworm',
    });
  }
  const name = familiarTagged(ref);
  const have = ctx.exists(name);
  if (have) return { id: have, cached: true };
  const suite = ref.tag === 'latest' ? 'stable' : ref.tag;
  if (!/^[a-z][a-z0-9.-]*$/.test(suite)) {
    throw new InvalidArgumentError(`${JSON.stringify(suite)} is not a Debian suite name`, { hint: 'use a code name such as bookworm or trixie, or stable' });
  }
  const mirror = opts.mirror ?? DEFAULT_MIRROR;
  if (!/^(https?|file):\/\/\S+$/.test(mirror)) {
    throw new InvalidArgumentError(`bad mirror ${JSON.stringify(mirror)}`, { hint: `give a URL like ${DEFAULT_MIRROR}` });
  }
  const progress = opts.progress;
  return withStaging(ctx.tmpDir, 'bootstrap-', async (dir) => {
    const target = path.join(dir, 'rootfs');
    await fs.promises.mkdir(target, { mode: 0o755 });
    progress?.({ status: `debootstrap --variant=minbase ${suite} ${mirror}` });
    await debootstrap(['--variant=minbase', suite, target, mirror], (line) => progress?.({ status: line }));
    // debootstrap's own work files are not part of the system.
    await fs.promises.rm(path.join(target, 'debootstrap'), { recursive: true, force: true });
    progress?.({ status: 'Importing the root filesystem' });
    const { id } = await ctx.importDirectory(target, {
      names: [name],
      config: { Env: [DEFAULT_PATH], Cmd: ['bash'] },
      createdBy: `debootstrap --variant=minbase ${suite} ${mirror}`,
      comment: 'made by berth with debootstrap',
      progress,
    });
    return { id, cached: false };
  });
}

async function debootstrap(args: string[], onLine: (line: string) => void): Promise<void> {
  const run = toolProcess('debootstrap', args, {
    env: { DEBIAN_FRONTEND: 'noninteractive' },
    onLine,
    hint: 'see the debootstrap output above; it usually names the package or step that failed',
  });
  try {
    await run.done;
  } catch (e) {
    if (!(e instanceof ToolError)) throw e; // not installed: FAILED_PRECONDITION naming the package
    // ToolError's text is debootstrap's last lines: what they say decides the class.
    if (/No such script/.test(e.stderr)) {
      throw new InvalidArgumentError(e.message, { hint: 'name a Debian suite that exists, e.g. debian:bookworm or debian:trixie', cause: e });
    }
    if (/Failed getting release|Couldn't download|couldn't download|Temporary failure|Could not resolve|Connection refused|Network is unreachable/i.test(e.stderr)) {
      throw new UnavailableError(e.message, { hint: 'check the network, the mirror (--mirror) and that the suite exists on it, then try again', cause: e });
    }
    throw e;
  }
}
