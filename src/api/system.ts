import * as os from 'node:os';
import { Router } from './router';
import { sendJSON } from './http';
import { API_VERSION, BERTH_VERSION, MIN_API_VERSION } from '../version';
import type { ImageService } from '../images/service';
import type { ContainerService } from '../engine/service';
import { LOG_DRIVERS } from '../engine/log-drivers';

export interface SystemInfo {
  root: string;
  socket: string;
  runtime: string;
  id: string;
  startedAt: Date;
  /** The data volume driver ('btrfs', 'dir'). */
  volumeDriver?: string;
  /** The bridge network (name, subnet, gateway, iptables chains), once open. */
  network?: () => { bridge: string; subnet: string; gateway: string; chains: string[] } | undefined;
}

/** /_ping, /version, /info: what `docker version` / `docker info` read. */
export function systemRoutes(router: Router, sys: SystemInfo, images: ImageService, containers?: ContainerService): void {
  const ping = async ({ req, res }: { req: import('node:http').IncomingMessage; res: import('node:http').ServerResponse }) => {
    // The docker CLI negotiates its API version from these headers.
    res.writeHead(200, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      Pragma: 'no-cache',
      'API-Version': API_VERSION,
      'Docker-Experimental': 'false',
      OSType: 'linux',
      'Builder-Version': '1',
    });
    res.end(req.method === 'HEAD' ? undefined : 'OK');
  };
  router.add('GET', /^\/_ping$/, ping);

  router.add('GET', /^\/version$/, async ({ res }) => sendJSON(res, 200, versionInfo()));

  router.add('GET', /^\/info$/, async ({ res }) => {
    const imgs = await images.list({ all: true });
    const ctrs = containers ? await containers.list({ all: true }) : [];
    const count = (st: string) => ctrs.filter((c) => c.State === st).length;
    sendJSON(res, 200, {
      ID: sys.id,
      Containers: ctrs.length,
      ContainersRunning: count('running'),
      ContainersPaused: count('paused'),
      ContainersStopped: ctrs.length - count('running') - count('paused'),
      Images: imgs.length,
      Driver: 'overlayfs',
      DriverStatus: [['Backing Filesystem', 'overlay'], ['Snapshotter', 'berth overlay (containerd model)']],
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'none'], Authorization: null, Log: [...LOG_DRIVERS] },
      MemoryLimit: true,
      SwapLimit: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      BridgeNfIptables: false,
      BridgeNfIp6tables: false,
      Debug: false,
      NFd: 0,
      OomKillDisable: false,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'json-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: fsCgroupVersion(),
      NEventsListener: 0,
      KernelVersion: os.release(),
      OperatingSystem: 'berth on ' + os.type(),
      OSVersion: '',
      OSType: 'linux',
      Architecture: os.machine(),
      IndexServerAddress: '',
      RegistryConfig: { AllowNondistributableArtifactsCIDRs: [], AllowNondistributableArtifactsHostnames: [], InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: {}, Mirrors: [] },
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      GenericResources: null,
      DockerRootDir: sys.root,
      HttpProxy: '',
      HttpsProxy: '',
      NoProxy: '',
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: BERTH_VERSION,
      Runtimes: { runc: { path: sys.runtime } },
      DefaultRuntime: 'runc',
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: '',
      ContainerdCommit: { ID: '', Expected: '' },
      RuncCommit: { ID: '', Expected: '' },
      InitCommit: { ID: '', Expected: '' },
      SecurityOptions: ['name=seccomp,profile=unconfined'],
      Warnings: null,
      // berth's own section: what a user asks `berth info` for.
      Berth: { Version: BERTH_VERSION, Socket: sys.socket, StartedAt: sys.startedAt.toISOString(), ...(sys.volumeDriver ? { VolumeDriver: sys.volumeDriver } : {}), Network: sys.network?.() ?? null },
    });
  });
}

export function versionInfo(): object {
  return {
    Platform: { Name: 'berth' },
    Components: [
      { Name: 'Engine', Version: BERTH_VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: goArch(), KernelVersion: os.release() } },
    ],
    Version: BERTH_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: 'node' + process.versions.node,
    Os: 'linux',
    Arch: goArch(),
    KernelVersion: os.release(),
    BuildTime: '',
  };
}

/** Node's arch names in Go's spelling, as image configs and Docker use them. */
export function goArch(): string {
  return ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' } as Record<string, string>)[process.arch] ?? process.arch;
}

function fsCgroupVersion(): string {
  try {
    require('node:fs').statSync('/sys/fs/cgroup/cgroup.controllers');
    return '2';
  } catch {
    return '1';
  }
}
