import { bootstrapImage } from './bootstrap';
import { buildBusybox, BUSYBOX_REF } from './busybox';
import type { ImageContext } from './context';
import { importDirectory } from './ingest';
import { findImage } from './records';
import { familiarTagged, parseRepoTag } from './reference';
import type { BootstrapOptions, VendorOptions } from './service';
import type { BuilderContext } from './staging';
import { vendorImage } from './vendor';

/**
 * Base images made on this host, with no registry: busybox (made on first use), vendor
 * (a host directory tree) and bootstrap (debootstrap). Each builds a directory in staging
 * and imports it as one layer (ingest.ts). Concurrent callers asking for the same image
 * share one build.
 */
export class BaseImages {
  private busyboxBuild?: Promise<void>;
  private readonly bootstraps = new Map<string, Promise<{ id: string; cached: boolean }>>();

  constructor(private readonly ctx: ImageContext) {}

  async vendor(opts: VendorOptions): Promise<{ id: string }> {
    this.ctx.life.check();
    return vendorImage(opts, this.builderContext());
  }

  async bootstrap(opts: BootstrapOptions): Promise<{ id: string; cached: boolean }> {
    this.ctx.life.check();
    const name = familiarTagged(parseRepoTag(opts.ref));
    const have = findImage(this.ctx.db.read(), name);
    if (have) return { id: have.id, cached: true };
    // Two callers asking for the same suite share one debootstrap run.
    let p = this.bootstraps.get(name);
    if (!p) {
      p = bootstrapImage({ ...opts, ref: name }, this.builderContext()).finally(() => this.bootstraps.delete(name));
      this.bootstraps.set(name, p);
    }
    return p;
  }

  /** Make the busybox image unless it exists; concurrent callers share one build. */
  async ensureBusybox(): Promise<void> {
    if (findImage(this.ctx.db.read(), BUSYBOX_REF)) return;
    this.busyboxBuild ??= buildBusybox(this.builderContext(), this.ctx.busyboxPath).then(
      () => {
        this.busyboxBuild = undefined;
      },
      (e) => {
        this.busyboxBuild = undefined;
        throw e;
      },
    );
    return this.busyboxBuild;
  }

  private builderContext(): BuilderContext {
    const ctx = this.ctx;
    return {
      tmpDir: ctx.tmpDir,
      busyboxPath: ctx.busyboxPath,
      importDirectory: (dir, spec) => importDirectory(ctx, dir, spec),
      exists: (ref) => findImage(ctx.db.read(), ref)?.id,
    };
  }
}
