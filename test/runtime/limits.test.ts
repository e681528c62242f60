import test, { type ExecutionContext } from 'ava';
import { eventually } from '../helpers/eventually';
import { ORPHAN_CMD, ORPHAN_PS, orphanState, type OrphanState } from '../helpers/orphan';
import { hostHardLimit, sandbox } from './fixture';

/** The stdout of a finished container, as one string. */
async function output(sb: Awaited<ReturnType<typeof sandbox>>, log: string, stream = 'stdout'): Promise<string> {
  return (await sb.logEntries(log)).filter((e) => e.stream === stream).map((e) => e.log).join('');
}

test('a container over its 8m memory limit is OOM-killed: exit 137, oomKilled true', async (t) => {
  const sb = await sandbox(t);
  // The string doubles until the cgroup's 8 MiB cannot hold it.
  const c = await sb.run(['sh', '-c', 'x=a; while true; do x=$x$x; done'], { memoryBytes: 8 * 1024 * 1024 });
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 137);
  t.is(exit.signal, 9);
  t.true(exit.oomKilled);
});

test('a container under its memory limit is not reported as OOM-killed', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'x=a; i=0; while [ $i -lt 10 ]; do x=$x$x; i=$((i+1)); done'], { memoryBytes: 8 * 1024 * 1024 });
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 0);
  t.false(exit.oomKilled);
});

test('the pids limit stops forks at the limit', async (t) => {
  const sb = await sandbox(t);
  // sh is one task: with a limit of 4, three sleeps start and the fourth fork fails.
  const c = await sb.run(['sh', '-c', 'sleep 30 & sleep 30 & sleep 30 & echo three; sleep 30 & echo four'], { pidsLimit: 4 });
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 2, "busybox sh exits 2 when it can't fork");
  t.is(await output(sb, c.io.log), 'three\n');
  t.regex(await output(sb, c.io.log, 'stderr'), /can't fork/);
});

test('a read-only rootfs refuses writes, while /tmp-like mounts still work', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'touch /x && echo wrote; echo ok > /dev/shm/y && cat /dev/shm/y'], { readonlyRootfs: true });
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 0);
  t.is(await output(sb, c.io.log), 'ok\n');
  t.regex(await output(sb, c.io.log, 'stderr'), /Read-only file system/);
});

test('rlimits are never above the host hard limit: Docker asks for 1048576 open files', async (t) => {
  const sb = await sandbox(t);
  const hostNofile = hostHardLimit('Max open files');
  const hostNproc = hostHardLimit('Max processes');
  const c = await sb.run(['sh', '-c', 'ulimit -n; ulimit -Hn; ulimit -Hu'], { rlimits: [{ type: 'nproc', soft: -1, hard: -1 }] });
  t.is((await sb.exit(c)).exitCode, 0);
  const [soft, hard, nproc] = (await output(sb, c.io.log)).trim().split('\n');
  const want = hostNofile === 'unlimited' ? 1048576 : Math.min(1048576, hostNofile);
  t.is(Number(soft), want);
  t.is(Number(hard), want);
  t.is(nproc, String(hostNproc));
});

/** Run the orphan command (see helpers/orphan.ts) and wait until the orphan has exited; `done` may ask for more. */
async function afterOrphanExits(t: ExecutionContext, init: boolean, done: (s: OrphanState) => boolean = () => true): Promise<OrphanState> {
  const sb = await sandbox(t);
  const c = await sb.run(ORPHAN_CMD, { init });
  const look = async (): Promise<OrphanState> => {
    const child = sb.rt.exec(c.id, { args: ORPHAN_PS, env: [], cwd: '/', user: { uid: 0, gid: 0 } });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.on('close', r));
    return orphanState(out);
  };
  return eventually(
    async () => {
      const s = await look();
      return s.execd && !s.orphanRunning && done(s) && s;
    },
    { message: 'the orphan sleep to have exited' },
  );
}

test('--init: pid 1 is tini and it reaps orphans', async (t) => {
  // tini reaps on SIGCHLD, a moment after the exit: wait for no zombie (a timeout fails it).
  const r = await afterOrphanExits(t, true, (s) => s.zombies === 0);
  t.is(r.pid1, '/sbin/docker-init');
  t.is(r.zombies, 0);
});

test('without --init an orphan stays a zombie (so the --init test means something)', async (t) => {
  const r = await afterOrphanExits(t, false);
  t.is(r.pid1, '/bin/busybox');
  t.is(r.zombies, 1);
});

test("--init passes the command's exit status on", async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'exit 4'], { init: true });
  t.is((await sb.exit(c)).exitCode, 4);
});

test('uid, gid, cwd, hostname and env reach the process', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'id -u; id -g; id -G; pwd; hostname; echo $FOO; echo $PATH'], {
    uid: 65534,
    gid: 65534,
    additionalGids: [5],
    cwd: '/tmp',
    hostname: 'box',
    env: ['FOO=bar'],
  });
  t.is((await sb.exit(c)).exitCode, 0);
  t.deepEqual((await output(sb, c.io.log)).split('\n'), ['65534', '65534', '65534 5', '/tmp', 'box', 'bar', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '']);
});

test("a container's network namespace has loopback only", async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'ls /sys/class/net; cat /sys/class/net/lo/operstate']);
  t.is((await sb.exit(c)).exitCode, 0);
  t.regex(await output(sb, c.io.log), /^lo\n(unknown|up)\n$/i);
});

test('capabilities are Docker defaults and masked paths are hidden', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'grep CapBnd /proc/self/status; cat /proc/keys | wc -c; grep " /proc/sys " /proc/self/mounts']);
  t.is((await sb.exit(c)).exitCode, 0);
  const [bnd, keys, procSys] = (await output(sb, c.io.log)).trim().split('\n');
  t.is(bnd.split(/\s+/)[1], '00000000a80425fb', "Docker's 14 capabilities");
  t.is(keys.trim(), '0', '/proc/keys is masked');
  t.regex(procSys, /\sro,/, '/proc/sys is read-only');
});
