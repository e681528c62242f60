import * as fs from 'node:fs';
import * as os from 'node:os';
import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';
import { checkMacAddress } from '../network/mac-address';
import { networkMode, type ContainerNetwork } from '../network/network';
import { etcNetwork, findRecord } from './network-attach';
import { newState, snapshotKey, type ContainerRecord } from './container-record';
import type { EngineContext } from './context';
import { planCreate } from './create-config';
import { writeEtcFiles } from './etc-files';
import { LiveContainer } from './live-container';
import { bindPoints, planMounts, type MountPoint, type MountRequest } from './mounts';
import { newContainerId, randomName, validateName } from './names';
import { portPlan } from './network-plan';
import { checkTmpfsTargets } from './security-config';
import type { CreateBody, CreateOptions } from './service';
import { ANONYMOUS_LABEL, anonymousName } from '../volumes/anonymous';
import { CLONE_OF_LABEL } from '../volumes/mount-clones';
import { faultPoint } from '../../volumes/shared/fault';

/**
 * Making a container (`docker create`) and renaming it. A create reserves the name
 * first, then makes the snapshot, then the directory (store.create's commit point); a
 * failure undoes what was made, so no half container stays.
 */

export async function createContainer(ctx: EngineContext, body: CreateBody, name?: string, opts: CreateOptions = {}): Promise<{ Id: string; Warnings: string[] }> {
  ctx.checkOpen();
  const id = newContainerId();
  const n = name !== undefined && name !== '' ? validateName(name) : randomName((x) => ctx.store.holderOf(x) !== undefined);
  if (!body || typeof body.Image !== 'string' || body.Image === '') {
    throw new InvalidArgumentError('no image given', { hint: 'name the image to run, e.g. berth run busybox' });
  }
  ctx.store.reserveName(n, id); // before any await: two creates cannot take one name
  let rec: ContainerRecord;
  let madeVolumes: string[] = [];
  let network: ContainerNetwork | undefined;
  let warnings: string[] = [];
  try {
    const image = await ctx.opts.images.resolve(body.Image);
    const imageConfig = opts.imageVolumes === false ? { ...image.config, Volumes: null } : image.config;
    const plan = planCreate(body, imageConfig, id, ctx.hostInfo);
    plan.HostConfig.Runtime = plan.HostConfig.Runtime || ctx.defaultRuntime;
    network = ctx.net
      ? ctx.net.endpointsFor(plan.HostConfig.NetworkMode, (body.NetworkingConfig as { EndpointsConfig?: Record<string, never> } | undefined)?.EndpointsConfig, id, n)
      : { Mode: networkMode(plan.HostConfig.NetworkMode), Ports: [] };
    const net = network;
    const mode = net.Mode;
    warnings = portPlan(mode, plan).warnings;
    if (mode === 'host' && !body.Hostname) plan.Config.Hostname = os.hostname();
    madeVolumes = [];
    const reqs = planMounts(plan.Config, plan.HostConfig, (ref) => {
      const r = ctx.store.find(ref);
      return r.Mounts ?? bindPoints(r.HostConfig.Binds);
    });
    // Under the gates of the volumes it names: a `volume rm` or `restore` now either sees this
    // container (its record exists when the gates open) or acts before its mounts are made.
    rec = await gatedVolumes(ctx, reqs, async () => {
      const mounts = await makeMounts(ctx, id, reqs, madeVolumes);
      faultPoint('container.create.mounts-made');
      const mac = checkMacAddress(plan.Config.MacAddress, mode === 'bridge' && !!ctx.net);
      if (mac && net.Endpoint) net.Endpoint.MacAddress = mac;
      checkTmpfsTargets(plan.HostConfig, mounts);
      const made: ContainerRecord = {
        version: 1,
        Id: id,
        Name: `/${n}`,
        Created: new Date().toISOString(),
        Image: image.id,
        Path: plan.Path,
        Args: plan.Args,
        Config: plan.Config,
        HostConfig: plan.HostConfig,
        State: newState(),
        RestartCount: 0,
        ManualStop: false,
        MonitorPid: 0,
        Runtime: ctx.runtimePath(plan.HostConfig.Runtime),
        Mounts: mounts,
        Network: net,
      };
      const key = snapshotKey(id);
      // The snapshot first, then the directory: a crash in between leaves a snapshot
      // without a directory, which open() removes.
      await ctx.opts.snapshotter.prepare(key, image.topLayer, { labels: { 'berth.container/id': id } });
      try {
        await ctx.store.create(made, async (p) => {
          await fs.promises.mkdir(p.rootfs, { mode: 0o755 });
          await writeEtcFiles(p, {
            hostname: made.Config.Hostname,
            name: n,
            ...etcNetwork(ctx.net, net, made.HostConfig, (ref) => findRecord(ctx, ref)),
            hostNetwork: mode === 'host',
          });
          if (made.Config.OpenStdin && !made.Config.Tty) await tool('mkfifo', ['-m', '600', p.stdin]);
        });
      } catch (e) {
        await ctx.opts.snapshotter.remove(key).catch(() => undefined);
        throw e;
      }
      return made;
    });
  } catch (e) {
    ctx.store.releaseName(n, id);
    ctx.net?.freeAll(network);
    // Anonymous volumes and clones made for this create go with it; a named one made on first use stays (as Docker's does).
    for (const v of madeVolumes) await ctx.opts.volumes?.remove(v, { force: true }).catch(() => undefined);
    throw e;
  }
  ctx.lives.set(id, new LiveContainer(rec));
  ctx.emit(rec, 'create');
  return { Id: id, Warnings: warnings };
}

/**
 * The container's mounts: volumes named on first use are made here, anonymous ones
 * (`-v /path`, an image VOLUME) get a fresh 64-hex name, and `VOL@SNAP` gets a fresh clone
 * of the snapshot for container `id` (volumes/mount-clones.ts). `made` collects the
 * anonymous volumes and clones made, so a failed create can remove them.
 */
async function makeMounts(ctx: EngineContext, id: string, reqs: MountRequest[], made: string[]): Promise<MountPoint[]> {
  const out: MountPoint[] = [];
  let clones = 0;
  for (const r of reqs) {
    if (!r.ensure) {
      out.push(r.point);
      continue;
    }
    const vols = ctx.opts.volumes;
    if (!vols) throw new FailedPreconditionError('this engine has no volume service', { hint: 'bind a host directory instead: -v /host/path:/container/path' });
    if (r.ensure.clone) {
      const { keep, ...ref } = r.ensure.clone;
      const info = await vols.cloneForMount(ref, id, { index: clones++, keep, labels: r.ensure.labels });
      made.push(info.name);
      out.push({ ...r.point, Name: info.name, Source: info.mountpoint, CloneOf: info.labels[CLONE_OF_LABEL], ...(keep ? {} : { Owned: true }) });
      continue;
    }
    const name = r.ensure.anonymous ? anonymousName() : r.ensure.name;
    const labels = { ...(r.ensure.labels ?? {}), ...(r.ensure.anonymous ? { [ANONYMOUS_LABEL]: '' } : {}) };
    const { info, created } = await vols.ensure(name, labels);
    if (created && r.ensure.anonymous) made.push(name);
    out.push({
      ...r.point,
      Name: name,
      Source: info.mountpoint,
      ...(r.ensure.anonymous ? { Anonymous: true } : {}),
      ...(created && !r.ensure.nocopy && !r.point.Subpath ? { CopyUp: true } : {}),
    });
  }
  return out;
}

/** Run `fn` under the gates of the named volumes and clone sources that `reqs` mount. */
function gatedVolumes<T>(ctx: EngineContext, reqs: MountRequest[], fn: () => Promise<T>): Promise<T> {
  const vols = ctx.opts.volumes;
  const names = reqs.flatMap((r) => (r.ensure?.clone ? [r.ensure.clone.volume] : r.ensure && !r.ensure.anonymous ? [r.ensure.name] : r.point.Type === 'volume' && r.point.Name ? [r.point.Name] : []));
  return vols && names.length ? vols.gate.run(names, fn) : fn();
}

export async function renameContainer(ctx: EngineContext, ref: string, newName: string): Promise<void> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  const n = validateName(newName);
  const old = c.rec.Name;
  if (n === old.slice(1)) {
    throw new InvalidArgumentError('Renaming a container with the same name as its current name', { hint: 'give a different name' });
  }
  await ctx.store.rename(c.rec, n);
  ctx.emit(c.rec, 'rename', { oldName: old });
}
