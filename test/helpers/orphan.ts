/**
 * The orphan-reaping tests run `sh -c '(sleep 0.1 &); exec sleep 30'`: the subshell's sleep
 * is orphaned to pid 1, and once the shell has exec'd its sleep nothing but pid 1 can reap
 * it. `ORPHAN_PS` (run in the container) and `orphanState` tell when that orphan has exited,
 * so the tests wait for it instead of sleeping a fixed time.
 */
export const ORPHAN_CMD = ['sh', '-c', '(sleep 0.1 &); exec sleep 30'];
export const ORPHAN_PS = ['sh', '-c', 'readlink /proc/1/exe; ps -o stat,args'];

export interface OrphanState {
  pid1: string;
  /** The shell has exec'd `sleep 30` (so the orphan was forked before). */
  execd: boolean;
  /** The orphan `sleep 0.1` still runs. */
  orphanRunning: boolean;
  zombies: number;
}

/** What ORPHAN_PS printed. */
export function orphanState(out: string): OrphanState {
  const [pid1 = '', ...ps] = out.trim().split('\n');
  const rows = ps.slice(1).map((l) => /^\s*(\S+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m);
  return {
    pid1,
    execd: rows.some((m) => m[2] === 'sleep 30'),
    orphanRunning: rows.some((m) => !m[1].startsWith('Z') && m[2] === 'sleep 0.1'),
    zombies: rows.filter((m) => m[1].startsWith('Z')).length,
  };
}
