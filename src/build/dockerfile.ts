import { DockerfileParser, type Instruction, type ModifiableInstruction } from 'dockerfile-ast';
import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * A Dockerfile read with dockerfile-ast (the parser behind VS Code's Dockerfile language
 * server) into stages of steps. The parser splits instructions, joins continuation lines,
 * honours `# escape=` and separates flags; what the arguments mean (words, quotes,
 * substitutions) is the executor's, as in moby, because it depends on the build state.
 *
 * Refused here, each with the line: `# syntax=` (a BuildKit frontend), heredocs,
 * `RUN --mount` and every other RUN flag, `COPY --link`/`--parents`/`--exclude`, unknown
 * instructions, and flags an instruction does not take.
 */

export interface Step {
  /** Upper-case instruction: RUN, COPY, ... */
  keyword: string;
  /** 1-based line of the instruction. */
  line: number;
  /** The arguments after the flags, continuations joined (unexpanded). */
  args: string;
  flags: Map<string, string>;
  /** As Docker prints it in "Step N/M : ...". */
  text: string;
}

export interface Stage {
  index: number;
  /** The `AS name`, lower-cased as Docker compares it; '' when none. */
  name: string;
  /** The FROM step (its args: the image reference, unexpanded). */
  from: Step;
  /** The base as written (unexpanded) and the stage name, split out of `from.args`. */
  base: string;
  steps: Step[];
}

export interface Dockerfile {
  escape: string;
  /** ARG steps before the first FROM. */
  globalArgs: Step[];
  stages: Stage[];
}

const FLAGS: Record<string, string[]> = {
  FROM: ['platform'],
  COPY: ['chown', 'from', 'chmod'],
  ADD: ['chown', 'chmod'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
  RUN: [],
};

const KNOWN = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

export function lineError(line: number, msg: string, hint: string): InvalidArgumentError {
  return new InvalidArgumentError(`Dockerfile line ${line}: ${msg}`, { hint });
}

export function parseDockerfile(text: string): Dockerfile {
  const df = DockerfileParser.parse(text);
  for (const d of df.getDirectives()) {
    const name = d.getName().toLowerCase();
    if (name === 'syntax') {
      throw lineError(d.getRange().start.line + 1, `the "# syntax=${d.getValue()}" directive asks for a BuildKit frontend`, 'berth runs the classic builder: remove the syntax line (berth reads Dockerfile 1.x syntax itself)');
    }
    if (name !== 'escape' && name !== 'check') {
      throw lineError(d.getRange().start.line + 1, `unknown parser directive "${name}"`, 'berth knows the escape directive only');
    }
  }
  const escape = df.getEscapeCharacter();
  const out: Dockerfile = { escape, globalArgs: [], stages: [] };
  for (const ins of df.getInstructions()) {
    const step = toStep(ins);
    if (step.keyword === 'FROM') {
      const w = step.args.trim().split(/\s+/);
      if (w.length === 0 || w[0] === '') throw lineError(step.line, 'FROM requires the name of a base image', 'e.g. FROM busybox');
      let name = '';
      if (w.length === 3 && w[1].toLowerCase() === 'as') name = w[2].toLowerCase();
      else if (w.length !== 1) throw lineError(step.line, 'FROM takes one image, optionally followed by "AS name"', 'e.g. FROM debian:bookworm AS build');
      if (name && !/^[a-z][a-z0-9-_.]*$/.test(name)) throw lineError(step.line, `invalid stage name "${w[2]}"`, 'a stage name starts with a letter and has letters, digits, -, _ and .');
      if (name && out.stages.some((s) => s.name === name)) throw lineError(step.line, `duplicate stage name "${name}"`, 'give each stage its own name');
      out.stages.push({ index: out.stages.length, name, from: step, base: w[0], steps: [] });
      continue;
    }
    if (out.stages.length === 0) {
      if (step.keyword !== 'ARG') throw lineError(step.line, `${step.keyword} before the first FROM`, 'a Dockerfile starts with FROM (only ARG may come before it)');
      out.globalArgs.push(step);
      continue;
    }
    out.stages[out.stages.length - 1].steps.push(step);
  }
  if (out.stages.length === 0) throw new InvalidArgumentError('the Dockerfile has no FROM', { hint: 'start it with FROM IMAGE (or FROM scratch)' });
  return out;
}

/** One instruction as a step, refusing what berth does not run. Used for ONBUILD triggers too. */
export function toStep(ins: Instruction): Step {
  const keyword = ins.getKeyword().toUpperCase();
  const line = ins.getRange().start.line + 1;
  if (!KNOWN.has(keyword)) throw lineError(line, `unknown instruction: ${ins.getKeyword()}`, 'check the spelling; berth runs the instructions of the classic builder');
  const flags = new Map<string, string>();
  const allowed = FLAGS[keyword];
  if (allowed) {
    for (const f of (ins as ModifiableInstruction).getFlags()) {
      const n = f.getName().toLowerCase();
      if (keyword === 'RUN') throw lineError(line, `RUN --${n} is a BuildKit feature`, 'berth runs the classic builder: drop the flag (for caches, use a multi-stage build)');
      if ((keyword === 'COPY' || keyword === 'ADD') && ['link', 'parents', 'exclude', 'checksum', 'keep-git-dir'].includes(n)) {
        throw lineError(line, `${keyword} --${n} is a BuildKit feature`, 'berth runs the classic builder: drop the flag');
      }
      if (!allowed.includes(n)) throw lineError(line, `${keyword} does not take --${n}`, `${keyword} takes ${allowed.length ? allowed.map((a) => '--' + a).join(', ') : 'no flags'}`);
      const v = f.getValue();
      if (v === null) throw lineError(line, `--${n} needs a value (--${n}=VALUE)`, `e.g. --${n}=...`);
      flags.set(n, v);
    }
  }
  const args = ins.getArgumentsContent() ?? '';
  if ((keyword === 'RUN' || keyword === 'COPY' || keyword === 'ADD') && /(^|\s)<<-?["']?[A-Za-z_]/.test(args)) {
    throw lineError(line, `heredocs (${keyword} <<EOF) are a BuildKit feature`, 'berth runs the classic builder: write the lines into a file of the context and COPY it, or use one RUN with &&');
  }
  if (keyword === 'ONBUILD') {
    const inner = args.trim().split(/\s+/)[0]?.toUpperCase() ?? '';
    if (inner === 'ONBUILD') throw lineError(line, 'chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed', 'give the trigger once');
    if (inner === 'FROM' || inner === 'MAINTAINER') throw lineError(line, `${inner} isn't allowed as an ONBUILD trigger`, 'use another instruction');
  }
  const flagText = [...flags].map(([k, v]) => `--${k}=${v}`).join(' ');
  return { keyword, line, args, flags, text: `${keyword} ${flagText ? flagText + ' ' : ''}${args}`.trim() };
}

/** Parse one ONBUILD trigger ("RUN echo hi") into a step. */
export function parseTrigger(trigger: string, escape: string): Step {
  const df = DockerfileParser.parse(`# escape=${escape}\n${trigger}\n`);
  const ins = df.getInstructions();
  if (ins.length !== 1) throw new InvalidArgumentError(`cannot read the ONBUILD trigger "${trigger}"`, { hint: 'the base image carries a malformed ONBUILD trigger' });
  const s = toStep(ins[0]);
  return { ...s, line: 0 };
}

/**
 * The stages a build of `target` (default: the last) needs, in Dockerfile order: the
 * target, the stages it is built FROM, and those it copies from with --from, transitively.
 * `refs(stage)` gives a stage's references to other stages (names or indexes), known to
 * the executor after expanding ARGs.
 */
export function neededStages(df: Dockerfile, target: string | undefined, refs: (s: Stage) => string[]): Stage[] {
  let last = df.stages[df.stages.length - 1];
  if (target) {
    const t = df.stages.find((s) => s.name === target.toLowerCase());
    if (!t) throw new InvalidArgumentError(`failed to reach build target ${target} in Dockerfile`, { hint: `name a stage of the Dockerfile (${df.stages.map((s) => s.name).filter(Boolean).join(', ') || 'it has no named stages'})` });
    last = t;
  }
  const need = new Set<number>();
  const visit = (s: Stage) => {
    if (need.has(s.index)) return;
    need.add(s.index);
    for (const r of refs(s)) {
      const dep = stageByRef(df, r, s.index);
      if (dep) visit(dep);
    }
  };
  visit(last);
  return df.stages.filter((s) => need.has(s.index));
}

/** The earlier stage `ref` names (its name or index), or undefined (an image then). */
export function stageByRef(df: Dockerfile, ref: string, before: number): Stage | undefined {
  const r = ref.toLowerCase();
  const byName = df.stages.find((s) => s.name !== '' && s.name === r && s.index < before);
  if (byName) return byName;
  if (/^\d+$/.test(r)) {
    const i = Number(r);
    if (i < before) return df.stages[i];
    throw new InvalidArgumentError(`invalid from flag value ${ref}: refers to stage ${i}, which is not an earlier stage`, { hint: 'refer to an earlier stage by its name or index' });
  }
  return undefined;
}
