import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { goArch } from '../images/config';
import { familiarTagged, parseRepoTag, splitTagged } from '../images/reference';
import type { ImageConfigFields } from '../images/service';
import { receiveContext, type BuildContext } from './context';
import { lineError, neededStages, parseDockerfile, parseTrigger, stageByRef, type Dockerfile, type Stage, type Step } from './dockerfile';
import { applyMetadata, DEFAULT_SHELL, type StageState } from './instructions';
import { runStep } from './run-step';
import { copyStep } from './copy-step';
import { workdirStep } from './workdir-step';
import { word, words } from './words';
import type { BuildContainers, BuildFiles, BuildImages, BuildOutput, BuildRequest } from './ports';
import { advance, short, useCache } from './step-cache';
import type { BuildCache } from './cache';

/**
 * The classic builder (POST /build, API 1.41): the context is unpacked, the Dockerfile
 * read, and the stages the target needs are run step by step. Every step makes an image
 * (metadata steps a config-only one, RUN and COPY/ADD one layer through a container
 * committed by the engine), so the cache is Docker's: a step with the same parent, the
 * same instruction and (COPY/ADD) the same content is the image it made before.
 *
 * Cleanup: every container a step makes is removed when the step ends, failed or
 * cancelled (rm=0 keeps the ones of successful steps, as Docker does); the unpacked
 * context is removed when the build ends. Images of finished steps stay: they are the
 * cache.
 */

/** Build args every Dockerfile may use without declaring them (Docker's predefined ARGs). */
const PREDEFINED_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

export interface BuilderDeps {
  containers: BuildContainers;
  files: BuildFiles;
  images: BuildImages;
  cache: BuildCache;
  /** Scratch space for contexts (under the data root). */
  tmpDir: string;
}

export class Builder {
  constructor(private readonly deps: BuilderDeps) {}

  /** Run one build; resolves with the image id. Errors are typed; the caller reports them in the stream. */
  async build(req: BuildRequest, out: BuildOutput): Promise<string> {
    checkPlatform(req.platform, 'platform');
    if (req.cacheFrom.length) req = { ...req, cacheSources: await this.cacheSources(req.cacheFrom, out, req.quiet) };
    const names = req.tags.map((t) => familiarTagged(parseRepoTag(t)));
    const ctx = await receiveContext(req.context, this.deps.tmpDir, req.dockerfile);
    try {
      const df = parseDockerfile(ctx.dockerfile);
      const run = new BuildRun(this.deps, req, out, ctx, df);
      const id = await run.run();
      for (const n of names) {
        const { repo, tag } = splitTagged(n);
        await this.deps.images.tag(id, repo, tag);
      }
      if (req.quiet) out.stream(`${id}\n`);
      else {
        out.stream(`Successfully built ${short(id)}\n`);
        for (const n of names) out.stream(`Successfully tagged ${n}\n`);
      }
      return id;
    } finally {
      await ctx.dispose();
      const ids = await this.deps.images.ids().catch(() => undefined);
      if (ids) await this.deps.cache.prune((id) => ids.has(id)).catch(() => undefined);
    }
  }

  /** --cache-from names to image ids; a name not held is skipped with a warning, as Docker does. */
  private async cacheSources(names: string[], out: BuildOutput, quiet: boolean): Promise<string[]> {
    const ids: string[] = [];
    for (const n of names) {
      try {
        ids.push((await this.deps.images.resolve(n)).id);
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
        if (!quiet) out.stream(`[Warning] cache-from image ${n} not found: it is not used\n`);
      }
    }
    return ids;
  }
}


interface StageResult {
  image: string | null;
  config: ImageConfigFields;
}

class BuildRun {
  private readonly results = new Map<number, StageResult>();
  private readonly usedArgs = new Set<string>();
  private readonly globalArgs = new Map<string, string | undefined>();
  private stepNo = 0;
  private total = 0;

  constructor(
    private readonly deps: BuilderDeps,
    private readonly req: BuildRequest,
    private readonly out: BuildOutput,
    private readonly ctx: BuildContext,
    private readonly df: Dockerfile,
  ) {}

  private say(text: string): void {
    if (!this.req.quiet) this.out.stream(text);
  }

  async run(): Promise<string> {
    for (const a of this.df.globalArgs) for (const [k, v] of this.declare(a, new Map())) this.globalArgs.set(k, v);
    const stages = neededStages(this.df, this.req.target, (s) => this.stageRefs(s));
    this.total = stages.reduce((n, s) => n + 1 + s.steps.length, 0);
    let last: StageResult | undefined;
    for (const s of stages) {
      last = await this.runStage(s, s === stages[stages.length - 1]);
      this.results.set(s.index, last);
    }
    const unused = Object.keys(this.req.buildArgs).filter((k) => !this.usedArgs.has(k) && !PREDEFINED_ARGS.includes(k));
    if (unused.length) this.say(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    if (!last) throw new InvalidArgumentError('no stage to build', { hint: 'check --target' });
    if (last.image === null) {
      // FROM scratch and nothing else: an image with no layers.
      last.image = (await this.deps.images.commitImageConfig(null, { names: [], config: last.config })).id;
    }
    this.out.aux({ ID: last.image });
    return last.image;
  }

  /** The stages a stage refers to: its FROM (when a stage) and its COPY --from. */
  private stageRefs(s: Stage): string[] {
    const refs = [this.fromName(s)];
    for (const st of s.steps) if (st.keyword === 'COPY' && st.flags.has('from')) refs.push(st.flags.get('from') as string);
    return refs;
  }

  private fromName(s: Stage): string {
    const env = new Map<string, string>();
    for (const [k, v] of this.globalArgs) if (v !== undefined) env.set(k, v);
    return word(s.base, env, this.df.escape, s.from.line);
  }

  /** ARG name[=default]...: the declared names with their values (the build arg wins). */
  private declare(step: Step, env: Map<string, string>): Array<[string, string | undefined]> {
    const out: Array<[string, string | undefined]> = [];
    for (const w of words(step.args, env, this.df.escape, step.line)) {
      const i = w.indexOf('=');
      const name = i < 0 ? w : w.slice(0, i);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw lineError(step.line, `invalid ARG name: ${name}`, 'e.g. ARG VERSION=1.0');
      const given = this.req.buildArgs[name];
      if (Object.prototype.hasOwnProperty.call(this.req.buildArgs, name)) this.usedArgs.add(name);
      out.push([name, given !== undefined && given !== null ? given : i < 0 ? undefined : w.slice(i + 1)]);
    }
    if (out.length === 0) throw lineError(step.line, 'ARG requires at least one argument', 'e.g. ARG VERSION=1.0');
    return out;
  }

  private header(step: Step): void {
    this.stepNo++;
    this.say(`Step ${this.stepNo}/${this.total} : ${step.text}\n`);
  }

  private async runStage(stage: Stage, isTarget: boolean): Promise<StageResult> {
    this.header(stage.from);
    const st = await this.from(stage);
    this.say(` ---> ${st.image ? short(st.image) : ''}\n`);
    // The base image's ONBUILD triggers run first, as Docker runs them.
    const triggers = st.config.OnBuild ?? [];
    if (triggers.length) {
      st.config.OnBuild = null;
      this.say(`# Executing ${triggers.length} build trigger${triggers.length === 1 ? '' : 's'}\n`);
      for (const t of triggers) await this.step(st, parseTrigger(t, this.df.escape), stage, true);
    }
    for (const step of stage.steps) {
      this.header(step);
      await this.step(st, step, stage, false);
    }
    if (isTarget && Object.keys(this.req.labels).length) {
      st.config.Labels = { ...(st.config.Labels ?? {}), ...this.req.labels };
      await this.commitMeta(st, `LABEL ${Object.entries(this.req.labels).map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ')}`, true);
    }
    return { image: st.image, config: st.config };
  }

  private async from(stage: Stage): Promise<StageState> {
    const platform = stage.from.flags.get('platform');
    if (platform !== undefined) {
      const env = new Map([...this.globalArgs].filter((e): e is [string, string] => e[1] !== undefined));
      env.set('TARGETPLATFORM', `linux/${goArch()}`);
      env.set('BUILDPLATFORM', `linux/${goArch()}`);
      checkPlatform(word(platform, env, this.df.escape, stage.from.line), `FROM --platform (line ${stage.from.line})`);
    }
    const name = this.fromName(stage);
    const st: StageState = { image: null, config: {}, shell: [...DEFAULT_SHELL], args: new Map(), cmdSet: false, escape: this.df.escape };
    if (name.toLowerCase() === 'scratch') return st;
    const dep = stageByRef(this.df, name, stage.index);
    if (dep && !/^\d+$/.test(name)) {
      const r = this.results.get(dep.index);
      if (!r) throw lineError(stage.from.line, `stage ${name} was not built`, 'this is a bug in berth\'s stage order');
      st.image = r.image;
      st.config = structuredClone(r.config);
    } else {
      const img = await this.baseImage(name, stage.from.line);
      st.image = img.id;
      st.config = structuredClone(img.config ?? {});
    }
    if (Array.isArray(st.config.Shell) && st.config.Shell.length) st.shell = [...st.config.Shell];
    return st;
  }

  /** An image to build FROM or COPY --from: the local store, pulled first with pull=1 (when berth can pull). */
  async baseImage(ref: string, line: number): Promise<{ id: string; config: ImageConfigFields }> {
    const pull = this.deps.images.pull;
    if (this.req.pull && !pull) {
      throw new InvalidArgumentError('pull=1 (--pull) needs a registry client, and this daemon has none', { hint: 'build without --pull: the base images then come from the local store' });
    }
    if (this.req.pull && pull) await pull(ref, { auth: this.req.authConfigs });
    try {
      const img = await this.deps.images.resolve(ref);
      return { id: img.id, config: img.config };
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      if (pull && !this.req.pull) {
        await pull(ref, { auth: this.req.authConfigs });
        const img = await this.deps.images.resolve(ref);
        return { id: img.id, config: img.config };
      }
      throw new NotFoundError(`Dockerfile line ${line}: no such image: ${ref}`, {
        hint: 'this daemon has no registry client: make the base image locally first (`berth image bootstrap debian:bookworm`, `berth load`, `berth import` or `berth image vendor`)',
      });
    }
  }

  private async step(st: StageState, step: Step, stage: Stage, trigger: boolean): Promise<void> {
    this.req.signal?.throwIfAborted();
    if (trigger) this.say(`Step ${step.text}\n`);
    if (step.keyword === 'ARG') {
      const env = new Map<string, string>();
      for (const [k, v] of this.globalArgs) if (v !== undefined) env.set(k, v);
      for (const [k, v] of st.args) if (v !== undefined) env.set(k, v);
      for (const [k, v] of this.declare(step, env)) {
        // A global ARG re-declared without a value takes the global's value.
        st.args.set(k, v ?? (this.globalArgs.has(k) ? this.globalArgs.get(k) : undefined));
      }
      await this.commitMeta(st, `/bin/sh -c #(nop)  ${step.text}`);
      return;
    }
    const meta = applyMetadata(st, step);
    const env = { containers: this.deps.containers, files: this.deps.files, images: this.deps.images, cache: this.deps.cache, req: this.req, say: (t: string) => this.say(t) };
    if (step.keyword === 'WORKDIR') return workdirStep(env, st, step);
    if (meta !== undefined) {
      await this.commitMeta(st, meta);
      return;
    }
    // Predefined proxy args may be used undeclared, as Docker allows.
    for (const p of PREDEFINED_ARGS) if (this.req.buildArgs[p] && !st.args.has(p)) st.args.set(p, this.req.buildArgs[p] ?? undefined);
    if (step.keyword === 'RUN') return runStep(env, st, step);
    if (step.keyword === 'COPY' || step.keyword === 'ADD') {
      const from = step.flags.get('from');
      let source: { image: string | null; context?: undefined } | { context: BuildContext } = { context: this.ctx };
      if (from !== undefined) {
        const dep = stageByRef(this.df, from, stage.index);
        if (dep) source = { image: this.results.get(dep.index)?.image ?? null };
        else source = { image: (await this.baseImage(from, step.line)).id };
      }
      return copyStep(env, st, step, source);
    }
    throw lineError(step.line, `${step.keyword} is not supported here`, 'this is a bug in berth');
  }

  /** Commit the stage's config as a config-only image, or take the cached one. */
  private async commitMeta(st: StageState, createdBy: string, silent = false): Promise<void> {
    const key = `meta\n${createdBy}\n${JSON.stringify(st.config)}`;
    const d = { ...this.deps, req: this.req, say: (t: string) => this.say(t) };
    if (await useCache(d, st, key, createdBy, silent)) return;
    await advance(d, st, key, (await this.deps.images.commitImageConfig(st.image, { names: [], config: st.config, createdBy })).id);
    if (!silent) this.say(` ---> ${short(st.image as string)}\n`);
  }
}


/** berth builds for its own platform only: linux/<its arch>. */
function checkPlatform(p: string | undefined, what: string): void {
  if (!p) return;
  const want = `linux/${goArch()}`;
  const [os, arch] = p.toLowerCase().split('/');
  if (os === 'linux' && (arch === undefined || arch === goArch())) return;
  throw new InvalidArgumentError(`${what} ${p} is not supported: berth builds for ${want} only`, { hint: `drop the platform or ask for ${want}` });
}

