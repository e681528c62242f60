import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { isValidName } from '../../volumes/drivers/names';
import { parseSnapshotRef, type SnapshotRef } from '../volumes/mount-clones';
import type { CreateBody, HostConfig } from './service';

/**
 * A container's mounts, decided once at create from `-v` (HostConfig.Binds and
 * Config.Volumes), HostConfig.Mounts, HostConfig.VolumesFrom and the image's VOLUMEs,
 * and kept in its record. Inspect shows them (Docker's `Mounts`), start bind-mounts them.
 */
export interface MountPoint {
  Type: 'bind' | 'volume' | 'tmpfs';
  /** The volume's name (volumes only). */
  Name?: string;
  /** Host path: the bind source or the volume's mountpoint ('' for tmpfs). */
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** berth: the volume was made for this container (`-v /path`, an image VOLUME); `rm -v` removes it. */
  Anonymous?: boolean;
  /** berth: a path inside the volume to mount instead of its root (Mounts[].VolumeOptions.Subpath). */
  Subpath?: string;
  /** berth: fill the (new, empty) volume from the image's files at Destination before the first start. */
  CopyUp?: boolean;
  /** berth: tmpfs size and mode. */
  Tmpfs?: { SizeBytes?: number; Mode?: number };
  /** berth: the volume is a clone made on mount of this `VOL@SNAP` (volumes/mount-clones.ts). */
  CloneOf?: string;
  /** berth: the volume goes with the container (an unkept clone made on mount). */
  Owned?: boolean;
}

/** What a mount needs from the volume service, decided at create. */
export interface MountRequest {
  point: MountPoint;
  /** Make the volume (named on first use, or anonymous). */
  ensure?: { name: string; anonymous: boolean; labels?: Record<string, string>; nocopy: boolean; clone?: SnapshotRef & { keep: boolean } };
}

const MODES = ['ro', 'rw', 'z', 'Z', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'nocopy'];

/**
 * One `-v` spec: `/host:/dst[:opts]` (bind), `NAME:/dst[:opts]` (named volume) or
 * `VOL@SNAP:/dst[:opts]` (a clone of a snapshot made on mount: `clone`).
 */
export function parseVolumeSpec(spec: string): {
  kind: 'bind' | 'volume';
  source: string;
  destination: string;
  readonly: boolean;
  nocopy: boolean;
  propagation: string;
  clone?: SnapshotRef;
} {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) {
    throw new InvalidArgumentError(`invalid volume specification: '${spec}'`, { hint: 'use NAME:/container/path[:ro] or /host/path:/container/path[:ro]' });
  }
  const [source, destination, opts = ''] = parts;
  if (!path.posix.isAbsolute(destination)) {
    throw new InvalidArgumentError(`invalid mount path '${destination}': it must be absolute`, { hint: 'use NAME:/container/path or /host/path:/container/path' });
  }
  const flags = opts.split(',').filter(Boolean);
  for (const f of flags) {
    if (!MODES.includes(f)) throw new InvalidArgumentError(`invalid mode '${f}' in '${spec}'`, { hint: 'use ro or rw' });
  }
  const propagation = flags.find((f) => /private|shared|slave/.test(f)) ?? 'rprivate';
  const common = { destination: path.posix.normalize(destination), readonly: flags.includes('ro'), nocopy: flags.includes('nocopy'), propagation };
  if (path.isAbsolute(source)) return { kind: 'bind', source: path.resolve(source), ...common };
  const clone = parseSnapshotRef(source);
  if (clone) return { kind: 'volume', source, clone, ...common };
  if (!isValidName(source)) {
    throw new InvalidArgumentError(`invalid volume name '${source}' in '${spec}'`, {
      hint: 'a volume name is 2 to 255 characters from [a-zA-Z0-9_.-] starting with a letter or digit; a host path must be absolute',
    });
  }
  return { kind: 'volume', source, ...common };
}

interface ApiMount {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string>; Subpath?: string; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
  BindOptions?: { Propagation?: string };
}

/**
 * `--mount …,volume-driver=…,volume-opt=K=V` (VolumeOptions.DriverConfig): berth's one
 * driver is `local`, and the one option is `keep=true|false` on a clone made on mount
 * (VOL@SNAP): keep the clone when the container goes. Anything else is refused, not dropped.
 */
function driverOptions(dc: { Name?: string; Options?: Record<string, string> } | undefined, clone: boolean): boolean {
  if (dc?.Name && dc.Name !== 'local') {
    throw new InvalidArgumentError(`volume driver '${dc.Name}' is not available`, { hint: "this daemon's volumes use its own driver (it answers to 'local'); drop volume-driver" });
  }
  let keep = false;
  for (const [k, v] of Object.entries(dc?.Options ?? {})) {
    if (k === 'keep' && clone && ['true', 'false'].includes(v)) {
      keep = v === 'true';
      continue;
    }
    throw new InvalidArgumentError(`volume option '${k}=${v}' is not supported on a mount`, {
      hint: clone ? 'the one option of a VOLUME@SNAPSHOT mount is volume-opt=keep=true (keep the clone after the container)' : 'create the volume first with its options: berth volume create -o size=10G NAME',
    });
  }
  return keep;
}

function checkSubpath(sub: string | undefined): string | undefined {
  if (sub === undefined || sub === '') return undefined;
  const n = path.posix.normalize(sub);
  if (path.posix.isAbsolute(sub) || n === '..' || n.startsWith('../')) {
    throw new InvalidArgumentError(`invalid volume subpath '${sub}'`, { hint: 'give a relative path inside the volume, without ..' });
  }
  return n;
}

/**
 * Every mount of a new container, without touching anything: the engine then makes the
 * volumes the requests name. `volumesFrom` gives another container's mounts by reference.
 */
export function planMounts(cfg: Pick<CreateBody, 'Volumes'>, hc: HostConfig, volumesFrom: (ref: string) => MountPoint[]): MountRequest[] {
  const out: MountRequest[] = [];
  const taken = new Set<string>();
  const add = (r: MountRequest) => {
    if (taken.has(r.point.Destination)) {
      throw new InvalidArgumentError(`Duplicate mount point: ${r.point.Destination}`, { hint: 'mount one thing per container path' });
    }
    taken.add(r.point.Destination);
    out.push(r);
  };
  for (const b of hc.Binds ?? []) {
    const s = parseVolumeSpec(b);
    const mode = b.split(':')[2] ?? '';
    if (s.kind === 'bind') {
      add({ point: { Type: 'bind', Source: s.source, Destination: s.destination, Mode: mode, RW: !s.readonly, Propagation: s.propagation } });
    } else {
      add({
        point: { Type: 'volume', Name: s.source, Source: '', Destination: s.destination, Driver: 'local', Mode: mode || 'z', RW: !s.readonly, Propagation: '' },
        ensure: { name: s.source, anonymous: false, nocopy: s.nocopy, ...(s.clone ? { clone: { ...s.clone, keep: false } } : {}) },
      });
    }
  }
  for (const raw of (hc.Mounts ?? []) as ApiMount[]) {
    const target = raw.Target ?? '';
    if (!path.posix.isAbsolute(target)) throw new InvalidArgumentError(`invalid mount target '${target}': it must be absolute`, { hint: 'use --mount type=volume,src=NAME,dst=/path' });
    const dst = path.posix.normalize(target);
    const rw = !raw.ReadOnly;
    switch (raw.Type) {
      case 'bind': {
        if (!raw.Source || !path.isAbsolute(raw.Source)) throw new InvalidArgumentError(`invalid bind source '${raw.Source ?? ''}'`, { hint: 'a bind source is an absolute host path' });
        // Unlike -v (Binds), which makes a missing host directory, --mount refuses it, as Docker does.
        if (!fs.existsSync(raw.Source)) {
          throw new InvalidArgumentError(`invalid mount config for type "bind": bind source path does not exist: ${raw.Source}`, { hint: 'create the host path first, or use -v HOST:CONTAINER, which makes a missing directory' });
        }
        add({ point: { Type: 'bind', Source: path.resolve(raw.Source), Destination: dst, Mode: '', RW: rw, Propagation: raw.BindOptions?.Propagation || 'rprivate' } });
        break;
      }
      case 'volume':
      case undefined: {
        const anonymous = !raw.Source;
        const name = raw.Source || '';
        const clone = anonymous ? undefined : parseSnapshotRef(name);
        const keep = driverOptions(raw.VolumeOptions?.DriverConfig, !!clone);
        if (!anonymous && !clone && !isValidName(name)) {
          throw new InvalidArgumentError(`invalid volume name '${name}'`, { hint: 'a volume name is 2 to 255 characters from [a-zA-Z0-9_.-] starting with a letter or digit' });
        }
        add({
          point: { Type: 'volume', Name: name, Source: '', Destination: dst, Driver: 'local', Mode: 'z', RW: rw, Propagation: '', Subpath: checkSubpath(raw.VolumeOptions?.Subpath), ...(anonymous ? { Anonymous: true } : {}) },
          ensure: { name, anonymous, labels: raw.VolumeOptions?.Labels, nocopy: !!raw.VolumeOptions?.NoCopy, ...(clone ? { clone: { ...clone, keep } } : {}) },
        });
        break;
      }
      case 'tmpfs': {
        if (raw.Source) throw new InvalidArgumentError('a tmpfs mount takes no source', { hint: 'use --mount type=tmpfs,dst=/path' });
        add({ point: { Type: 'tmpfs', Source: '', Destination: dst, Mode: '', RW: rw, Propagation: '', Tmpfs: { ...raw.TmpfsOptions } } });
        break;
      }
      default:
        throw new InvalidArgumentError(`mount type '${raw.Type}' is not supported`, { hint: 'use type=volume, bind or tmpfs' });
    }
  }
  for (const ref of (hc.VolumesFrom as string[] | null | undefined) ?? []) {
    const [name, mode = ''] = ref.split(':');
    if (mode && mode !== 'ro' && mode !== 'rw') throw new InvalidArgumentError(`invalid mode '${mode}' in --volumes-from ${ref}`, { hint: 'use CONTAINER[:ro|rw]' });
    for (const m of volumesFrom(name)) {
      if (m.Type === 'tmpfs' || taken.has(m.Destination)) continue;
      const rw = mode === 'ro' ? false : mode === 'rw' ? true : m.RW;
      const { Anonymous: _a, CopyUp: _c, Owned: _o, ...rest } = m;
      taken.add(m.Destination);
      out.push({ point: { ...rest, RW: rw, Mode: mode || m.Mode } });
    }
  }
  for (const dst of Object.keys(cfg.Volumes ?? {})) {
    const d = path.posix.normalize(dst);
    if (!path.posix.isAbsolute(d)) throw new InvalidArgumentError(`invalid volume path '${dst}': it must be absolute`, { hint: 'use -v /container/path' });
    if (taken.has(d)) continue;
    taken.add(d);
    out.push({
      point: { Type: 'volume', Name: '', Source: '', Destination: d, Driver: 'local', Mode: '', RW: true, Propagation: '', Anonymous: true },
      ensure: { name: '', anonymous: true, nocopy: false },
    });
  }
  return out;
}

/** A bind mount of old records (made before Mounts were recorded). */
export function bindPoints(binds: string[] | null | undefined): MountPoint[] {
  return (binds ?? []).map((b) => {
    const s = parseVolumeSpec(b);
    return { Type: 'bind', Source: s.source, Destination: s.destination, Mode: s.readonly ? 'ro' : '', RW: !s.readonly, Propagation: 'rprivate' };
  });
}

/** Docker's inspect view of a mount. */
export function mountView(m: MountPoint): Record<string, unknown> {
  const v: Record<string, unknown> = { Type: m.Type };
  if (m.Type === 'volume') v.Name = m.Name;
  v.Source = m.Source;
  v.Destination = m.Destination;
  if (m.Type === 'volume') v.Driver = m.Driver ?? 'local';
  v.Mode = m.Mode;
  v.RW = m.RW;
  v.Propagation = m.Propagation;
  return v;
}
