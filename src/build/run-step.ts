import type { Step } from './dockerfile';
import { command, type StageState } from './instructions';
import type { StepDeps } from './ports';
import { advance, short, stepBase, StepFailedError, useCache } from './step-cache';
import type { CreateBody } from '../engine/service';

/**
 * RUN: the command runs as a container of the stage's image on the daemon's default bridge
 * (so a Debian mirror is reached as from any container), its output streamed into the
 * build, and its changes committed as a layer by the engine's commit with the stage's
 * config (never the RUN command). The container is removed whatever happens; a cancelled
 * build (the client went away) kills it first.
 */

export async function runStep(d: StepDeps, st: StageState, step: Step): Promise<void> {
  const cmd = command(st, step);
  // Declared build args with a value reach the command as env (not the image), ENV winning.
  const envKeys = new Set((st.config.Env ?? []).map((e) => e.split('=')[0]));
  const argEnv = [...st.args].filter(([k, v]) => v !== undefined && !envKeys.has(k)).map(([k, v]) => `${k}=${v}`);
  const shown = cmd.join(' ');
  const createdBy = argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ${shown}` : shown;
  const key = `run\n${JSON.stringify(cmd)}\n${JSON.stringify(argEnv)}\n${JSON.stringify(st.config)}`;
  if (await useCache(d, st, key, createdBy)) return;
  const parent = await stepBase(d, st);
  const body: CreateBody = {
    Image: parent,
    Cmd: cmd,
    Entrypoint: [],
    Env: [...(st.config.Env ?? []), ...argEnv],
    User: st.config.User ?? '',
    WorkingDir: st.config.WorkingDir ?? '',
    AttachStdout: true,
    AttachStderr: true,
    Healthcheck: { Test: ['NONE'] },
    Labels: {},
    HostConfig: {
      NetworkMode: d.req.networkMode === 'default' ? 'bridge' : d.req.networkMode,
      ExtraHosts: d.req.extraHosts.length ? d.req.extraHosts : null,
      LogConfig: { Type: 'json-file' },
      ...d.req.limits,
    },
  };
  const { Id: cid } = await d.containers.create(body);
  let keep = false;
  let ok = false;
  try {
    d.say(` ---> Running in ${short(cid)}\n`);
    const onAbort = () => void d.containers.kill(cid, 'SIGKILL').catch(() => undefined);
    d.req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await d.containers.start(cid);
      for await (const chunk of d.containers.logs(cid, { follow: true, stdout: true, stderr: true, signal: d.req.signal })) {
        if (!d.req.quiet) d.say(chunk.data.toString('utf8'));
      }
      const { StatusCode } = await d.containers.wait(cid, 'not-running', d.req.signal);
      d.req.signal?.throwIfAborted();
      if (StatusCode !== 0) {
        throw new StepFailedError(`The command '${shown}' returned a non-zero code: ${StatusCode}`, StatusCode);
      }
    } finally {
      d.req.signal?.removeEventListener('abort', onAbort);
    }
    const { Id } = await d.containers.commit(cid, { replaceConfig: true, config: st.config, createdBy, pause: false });
    await advance(d, st, key, Id);
    keep = !d.req.rm && !d.req.forceRm;
    ok = true;
  } finally {
    if (!keep) {
      await d.containers.remove(cid, { force: true, volumes: true });
      if (ok) d.say(` ---> Removed intermediate container ${short(cid)}\n`);
    }
  }
  d.say(` ---> ${short(st.image as string)}\n`);
}
