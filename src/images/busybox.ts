import { DEFAULT_PATH } from './config';
import { parseReference } from './reference';
import { installBusybox, withStaging, writeBaseFiles, type BuilderContext } from './staging';

/**
 * The `busybox` image, made on first use from the host's static busybox
 * (Debian's busybox-static), so `berth run busybox` works with no registry at all.
 * The image holds /bin/busybox, one symlink per applet, /etc/passwd and /etc/group
 * (root, nobody), /tmp and /root; its command is `sh`.
 */

export const BUSYBOX_REF = 'busybox:latest';

/** Whether `ref` names the busybox image (`busybox`, `busybox:latest`), which always exists. */
export function isBusyboxRef(ref: string): boolean {
  try {
    const r = parseReference(ref);
    return !r.digest && r.repo === 'busybox' && (r.tag ?? 'latest') === 'latest';
  } catch {
    return false;
  }
}

/**
 * Build the image unless it exists. Callers must not run two builds at once (the store
 * shares one in-flight promise); a second build would only make a second, equal image.
 */
export async function buildBusybox(ctx: BuilderContext, busyboxPath: string = ctx.busyboxPath): Promise<string> {
  const have = ctx.exists(BUSYBOX_REF);
  if (have) return have;
  return withStaging(ctx.tmpDir, 'busybox-', async (dir) => {
    await installBusybox(dir, busyboxPath);
    await writeBaseFiles(dir);
    const { id } = await ctx.importDirectory(dir, {
      names: [BUSYBOX_REF],
      config: { Env: [DEFAULT_PATH], Cmd: ['sh'] },
      createdBy: `berth busybox: ${busyboxPath} --install`,
      comment: 'made by berth from the host busybox',
    });
    return id;
  });
}

