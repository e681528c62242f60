import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { DEFAULT_CAPABILITIES, allCapabilities } from './capabilities';
import { loadDefaultProfile, parseProfile, translateProfile, type OciSeccomp } from './seccomp';
import type { OciDevice, OciDeviceRule, OciSpec } from './oci';

export type { OciDevice };

/**
 * The security part of a container's OCI spec, with Docker's meaning: capabilities,
 * `--privileged` (every capability and every host device, no seccomp, no masked or
 * read-only paths, /sys and its cgroups writable), no-new-privileges, the seccomp profile
 * (Docker's default unless unconfined or given), namespaced sysctls, host devices with
 * their cgroup rules, extra device cgroup rules and the OOM score adjustment.
 *
 * applySecurity reads the host (its /dev, the default seccomp profile); everything it
 * takes was checked at create, so a failure here is the host having changed since.
 */

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer?: string;
  CgroupPermissions?: string;
}

export type SeccompChoice = { kind: 'default' } | { kind: 'unconfined' } | { kind: 'profile'; json: string };

export interface SecurityInput {
  /** The effective capability set (already tweaked by add/drop/privileged). */
  capabilities?: string[];
  privileged?: boolean;
  noNewPrivileges?: boolean;
  /** Default: Docker's default profile. Privileged containers get none. */
  seccomp?: SeccompChoice;
  sysctls?: Record<string, string>;
  devices?: DeviceMapping[];
  /** Docker's rule syntax: `c 1:3 mr`, `b *:* rwm`, `a *:* rwm`. */
  deviceCgroupRules?: string[];
  /** HostConfig.MaskedPaths / ReadonlyPaths when given (Docker's systempaths=unconfined sends []). */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  oomScoreAdj?: number;
}


/** `c 1:3 mr` → an allow rule; anything else refused. */
export function parseDeviceCgroupRule(rule: string): OciDeviceRule {
  const m = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/.exec(typeof rule === 'string' ? rule.trim() : '');
  if (!m || new Set(m[4]).size !== m[4].length) {
    throw new InvalidArgumentError(`invalid device cgroup rule ${JSON.stringify(rule)} (HostConfig.DeviceCgroupRules)`, {
      hint: "use 'TYPE MAJOR:MINOR ACCESS', e.g. 'c 1:3 rwm' or 'b 8:* r' (type a, b or c; * for any number; access from r, w, m)",
    });
  }
  const r: OciDeviceRule = { allow: true, type: m[1] as 'a' | 'b' | 'c', access: m[4] };
  if (m[2] !== '*') r.major = Number(m[2]);
  if (m[3] !== '*') r.minor = Number(m[3]);
  return r;
}

/** Docker's `--device` permissions: some of r, w and m, each once. */
export function checkDevicePermissions(p: string | undefined): string {
  const perms = p === undefined || p === '' ? 'rwm' : p;
  if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) {
    throw new InvalidArgumentError(`invalid device permissions ${JSON.stringify(p)} (HostConfig.Devices)`, { hint: 'use some of r (read), w (write) and m (mknod), e.g. rwm' });
  }
  return perms;
}

/** One device node on the host, as the spec needs it; undefined if `p` is not a device. */
function deviceAt(p: string, inContainer: string): OciDevice | undefined {
  const st = fs.statSync(p);
  if (!st.isCharacterDevice() && !st.isBlockDevice()) return undefined;
  const rdev = st.rdev;
  // Linux's dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  return { path: inContainer, type: st.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

/**
 * The devices one `--device` names: a device node, or every device under a directory
 * (as Docker does for `--device /dev/snd`). A missing or non-device path is refused.
 */
export function devicesFor(m: DeviceMapping): OciDevice[] {
  const host = m.PathOnHost;
  const inside = m.PathInContainer || host;
  if (typeof host !== 'string' || !path.isAbsolute(host) || !path.isAbsolute(inside)) {
    throw new InvalidArgumentError(`invalid device mapping ${JSON.stringify(m)} (HostConfig.Devices)`, { hint: 'use --device /dev/HOST[:/dev/CONTAINER[:rwm]] with absolute paths' });
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(host);
  } catch {
    throw new InvalidArgumentError(`error gathering device information while adding custom device ${JSON.stringify(host)}: no such file or directory`, {
      hint: 'name a device node that exists on this host, e.g. --device /dev/fuse',
    });
  }
  if (st.isDirectory()) {
    const out: OciDevice[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (!e.isSymbolicLink()) {
          const dev = deviceAt(p, path.join(inside, path.relative(host, p)));
          if (dev) out.push(dev);
        }
      }
    };
    walk(host);
    return out;
  }
  const dev = deviceAt(host, inside);
  if (!dev) {
    throw new InvalidArgumentError(`${host} is not a device (HostConfig.Devices)`, { hint: 'name a character or block device node, e.g. --device /dev/fuse' });
  }
  return [dev];
}

/** Directories of /dev that hold no devices a privileged container should get (runc's list). */
const SKIP_DEV_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

/** Every device node of the host's /dev, for `--privileged`. */
export function hostDevices(root = '/dev'): OciDevice[] {
  const out: OciDevice[] = [];
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DEV_DIRS.has(e.name)) walk(p);
      } else if ((e.isCharacterDevice() || e.isBlockDevice()) && p !== '/dev/console') {
        try {
          const dev = deviceAt(p, p);
          if (dev) out.push(dev);
        } catch {
          // gone meanwhile
        }
      }
    }
  };
  walk(root);
  return out;
}

/** The seccomp part of the spec for a container with capabilities `caps`. */
export function seccompFor(choice: SeccompChoice | undefined, caps: readonly string[]): OciSeccomp | undefined {
  const c = choice ?? { kind: 'default' };
  if (c.kind === 'unconfined') return undefined;
  return translateProfile(c.kind === 'profile' ? parseProfile(c.json) : loadDefaultProfile(), caps);
}

/** Apply `sec` to a spec built with Docker's defaults (buildSpec's last step). */
export function applySecurity(spec: OciSpec & { linux: { seccomp?: OciSeccomp; sysctl?: Record<string, string>; devices?: OciDevice[] } }, sec: SecurityInput | undefined): void {
  const s = sec ?? {};
  const caps = s.privileged ? allCapabilities() : s.capabilities ?? [...DEFAULT_CAPABILITIES];
  spec.process.capabilities = { bounding: [...caps], effective: [...caps], permitted: [...caps] };
  spec.process.noNewPrivileges = !!s.noNewPrivileges;
  if (s.oomScoreAdj !== undefined) spec.process.oomScoreAdj = s.oomScoreAdj;
  if (s.sysctls && Object.keys(s.sysctls).length) spec.linux.sysctl = { ...s.sysctls };
  if (s.maskedPaths) spec.linux.maskedPaths = [...s.maskedPaths];
  if (s.readonlyPaths) spec.linux.readonlyPaths = [...s.readonlyPaths];

  const devices: OciDevice[] = [];
  if (s.privileged) {
    devices.push(...hostDevices());
    spec.linux.resources.devices = [{ allow: true, access: 'rwm' }];
    spec.linux.maskedPaths = [];
    spec.linux.readonlyPaths = [];
    // Docker's privileged /sys and its cgroups are writable.
    for (const m of spec.mounts) if (m.destination === '/sys' || m.destination === '/sys/fs/cgroup') m.options = m.options.filter((o) => o !== 'ro');
  } else {
    for (const m of s.devices ?? []) {
      const access = checkDevicePermissions(m.CgroupPermissions);
      for (const dev of devicesFor(m)) {
        devices.push(dev);
        spec.linux.resources.devices.push({ allow: true, type: dev.type, major: dev.major, minor: dev.minor, access });
      }
    }
    for (const r of s.deviceCgroupRules ?? []) spec.linux.resources.devices.push(parseDeviceCgroupRule(r));
    const seccomp = seccompFor(s.seccomp, caps);
    if (seccomp) spec.linux.seccomp = seccomp;
  }
  if (devices.length) {
    const seen = new Set<string>();
    spec.linux.devices = devices.filter((d) => !seen.has(d.path) && seen.add(d.path));
  }
}
