import { Command } from 'commander';
import { connect } from '../context';
import { formatItems, humanSize } from '../format';
import { DEFAULT_ROOT, resolveLocation } from '../../daemon/options';
import { closeInheritedFds } from '../../daemon/inherited-fds';
import { checkInsecureEntry } from '../../images/registry/endpoint';
import { InvalidArgumentError } from '../../../volumes/shared/errors';

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`invalid ${flag} ${JSON.stringify(v)}`, { hint: `${flag} takes a whole number of at least 1` });
  return n;
}
import { parseBytes } from '../parse';
import { versionText } from '../quick';

/** `--push-chunk-size`: at least 1 KiB (a chunk must move the upload forward). */
function chunkSize(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = parseBytes(v, '--push-chunk-size');
  if (n < 1024) throw new InvalidArgumentError(`invalid --push-chunk-size ${JSON.stringify(v)}: it must be at least 1KiB`, { hint: 'e.g. --push-chunk-size 5MiB' });
  return n;
}

export function systemCommands(program: Command): void {
  program
    .command('daemon')
    .description('run berthd in the foreground (other commands start it in the background when none answers)')
    .option('--root <dir>', 'data root (env BERTH_ROOT; default /var/lib/berth)')
    .option('-H, --host <host>', 'socket to listen on, unix:///PATH (env BERTH_HOST)')
    .option('--runtime <path>', 'OCI runtime to run containers with', 'runc')
    .option('--volume-driver <driver>', 'volume driver for a new data root: btrfs or dir (default: the best this host supports)')
    .option('--bridge <name>', 'the bridge containers attach to (default: berth0 on the default root, berth-<hash of the root> on any other; kept in the data root)')
    .option('--subnet <cidr>', 'the bridge\'s IPv4 subnet (default: the first of 172.17-31.0.0/16, 192.168.x.0/20 that no host route uses)')
    .option('--iptables-suffix <suffix>', "appended to berth's iptables chain names (default: '' for berth0, -<BRIDGE> otherwise); a bridge and a suffix belong to one data root: another root's are refused (CONFLICT)")
    .option('--insecure-registry <registry>', 'a registry (host[:port]) or network (CIDR) that may be reached over plain HTTP when HTTPS fails, beside 127.0.0.0/8; repeatable', (v: string, acc: string[]) => [...acc, checkInsecureEntry(v)], [] as string[])
    .option('--max-concurrent-downloads <n>', 'layers each pull downloads at once', (v: string) => positiveInt(v, '--max-concurrent-downloads'), 3)
    .option('--max-concurrent-uploads <n>', 'blobs each push uploads at once', (v: string) => positiveInt(v, '--max-concurrent-uploads'), 5)
    .option('--push-chunk-size <size>', 'a push sends blobs up to this size in one PUT (monolithic), bigger ones in PATCH chunks of it (default 32MiB)')
    .option('--body-timeout <seconds>', 'a request body must bring 16 KiB within this many seconds, a JSON body all of it within twice that, or its connection is closed (default 30)', (v: string) => positiveInt(v, '--body-timeout'))
    .option('--volume-pool-size <size>', "btrfs volume pool: its size when it is made, allocated on the host (default 10% of the host's free space, 1 to 2 GiB); it grows by itself before it fills")
    .option('--volume-default-size <size>', 'btrfs: the size limit of a volume created without -o size (default: none; the pool and the host bound it)')
    .option('--max-decompression-ratio <n>', 'refuse an import, load, volume import, pull, build context, ADD or cp that expands past N times its compressed size (default: no cap; free space is always checked)')
    .option('--dry-run', 'print the iptables rules the daemon would install, and exit')
    .addHelpText(
      'after',
      '\nExamples:\n  berth daemon --root /tmp/b1 --host unix:///tmp/b1/berth.sock --bridge berth1 --subnet 10.201.0.0/24\n  berth daemon --dry-run        # the rules, nothing changed',
    )
    .action(async (opts: { runtime: string; volumeDriver?: 'btrfs' | 'dir'; bridge?: string; subnet?: string; iptablesSuffix?: string; dryRun?: boolean; insecureRegistry: string[]; maxConcurrentDownloads: number; maxConcurrentUploads: number; pushChunkSize?: string; bodyTimeout?: number; volumePoolSize?: string; volumeDefaultSize?: string; maxDecompressionRatio?: string }, cmd: Command) => {
      // First, before anything is spawned: what the caller left open is not berthd's to pass on.
      closeInheritedFds();
      const loc = resolveLocation(cmd.optsWithGlobals());
      const network = { bridge: opts.bridge, subnet: opts.subnet, iptablesSuffix: opts.iptablesSuffix };
      if (opts.dryRun) {
        const { BridgeNetwork } = require('../../network/network') as typeof import('../../network/network');
        for (const line of await BridgeNetwork.plan({ root: loc.root, defaultRoot: loc.root === DEFAULT_ROOT, ...network })) process.stdout.write(line + '\n');
        return;
      }
      // Loaded here, not at the top: the daemon's modules cost every other command ~70 ms.
      const { startDaemon } = require('../../daemon/daemon') as typeof import('../../daemon/daemon');
      const ratio = opts.maxDecompressionRatio === undefined ? undefined : Number(opts.maxDecompressionRatio);
      if (ratio !== undefined && !(Number.isFinite(ratio) && ratio >= 1)) {
        throw new InvalidArgumentError(`invalid --max-decompression-ratio ${JSON.stringify(opts.maxDecompressionRatio)}`, { hint: 'give a number of at least 1, e.g. 100' });
      }
      const volumePool = {
        size: opts.volumePoolSize === undefined ? undefined : parseBytes(opts.volumePoolSize, '--volume-pool-size'),
        defaultVolumeSize: opts.volumeDefaultSize === undefined ? undefined : parseBytes(opts.volumeDefaultSize, '--volume-default-size'),
      };
      const d = await startDaemon({ ...loc, runtime: opts.runtime, volumeDriver: opts.volumeDriver, network, insecureRegistries: opts.insecureRegistry, maxConcurrentDownloads: opts.maxConcurrentDownloads, maxConcurrentUploads: opts.maxConcurrentUploads, pushChunkSize: chunkSize(opts.pushChunkSize), bodyTimeoutSeconds: opts.bodyTimeout, volumePool, maxDecompressionRatio: ratio });
      const stop = (sig: string) => {
        process.stderr.write(`${new Date().toISOString()} info ${sig}: shutting down\n`);
        d.close().then(() => process.exit(0), () => process.exit(1));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      await new Promise(() => undefined); // serve until a signal
    });

  program
    .command('version')
    .description('show the berth client and daemon versions')
    .option('-f, --format <format>', "'json' or a Go-style template")
    .action(async (opts: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const v = await ctx.transport.json<Record<string, string>>('GET', '/version');
      if (opts.format) return void process.stdout.write(formatItems(opts.format, [v]));
      process.stdout.write(versionText(v));
    });

  program
    .command('info')
    .description('show what the daemon runs on: storage, runtime, counts')
    .option('-f, --format <format>', "'json' or a Go-style template")
    .action(async (opts: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const i = await ctx.transport.json<Record<string, unknown>>('GET', '/info');
      if (opts.format) return void process.stdout.write(formatItems(opts.format, [i]));
      const b = i.Berth as Record<string, string> & { Network?: { bridge: string; subnet: string; gateway: string; chains: string[] } | null };
      const n = b.Network;
      process.stdout.write(
        [
          `Server Version: ${i.ServerVersion}`,
          `Data root: ${i.DockerRootDir}`,
          `Socket: ${b.Socket}`,
          `Storage Driver: ${i.Driver}`,
          `Images: ${i.Images}`,
          `Containers: ${i.Containers}`,
          `Default Runtime: ${i.DefaultRuntime}`,
          ...(n ? [`Bridge: ${n.bridge} ${n.subnet} (gateway ${n.gateway})`, `iptables chains: ${n.chains.join(' ')}`] : []),
          `Kernel Version: ${i.KernelVersion}`,
          `Cgroup Version: ${i.CgroupVersion}`,
          `CPUs: ${i.NCPU}`,
          `Total Memory: ${humanSize(Number(i.MemTotal))}`,
        ].join('\n') + '\n',
      );
    });
}
