import * as fs from 'node:fs';

/**
 * Liveness of a process named in a record on disk: the daemon's lock, a pool user, an
 * export's claim on its staging directory.
 *
 * A pid alone cannot say it. A killed process whose parent has not reaped it yet is a
 * zombie that still answers kill(pid, 0), and once it is reaped its pid is handed to a
 * new, unrelated process. So a record names a process by three things:
 *   pid    the process id;
 *   start  its start time, field 22 of /proc/PID/stat (clock ticks since boot), which
 *          differs for any later process given the same pid;
 *   boot   /proc/sys/kernel/random/boot_id, because start times restart at every boot.
 * A process is alive when it exists, is not a zombie (state Z), and its start time and
 * boot id match the record. An older record that holds only a pid is checked as far as it
 * goes: the process exists and is not a zombie.
 *
 *   await writeFileAtomic(file, formatRecord(self()));
 *   if (!alive(parseRecord(await readFile(file, 'utf8')) ?? { pid })) ... // stale: take it over
 */
export interface ProcessRecord {
  pid: number;
  /** Field 22 of /proc/PID/stat. Absent in records written before it was recorded. */
  start?: number;
  /** The boot id, as /proc prints it. Absent in records written before it was recorded. */
  boot?: string;
}

/** What /proc says of a process now: its state letter and start time. */
export interface ProcessStat {
  state: string;
  start: number;
}

/** /proc/PID/stat's state and start time; undefined when there is no such process. */
export function statOf(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    throw e;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are
  // counted from the last ')'. After it come field 3 (state) onwards: field 22 is [19].
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], start: Number(fields[19]) };
}

let bootIdCache: string | undefined;
/** This boot's id (/proc/sys/kernel/random/boot_id). */
export function bootId(): string {
  return (bootIdCache ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
}

let selfCache: Required<ProcessRecord> | undefined;
/** The record naming this process. */
export function self(): Required<ProcessRecord> {
  if (!selfCache) {
    const st = statOf(process.pid);
    if (!st) throw new Error(`cannot read /proc/${process.pid}/stat`);
    selfCache = { pid: process.pid, start: st.start, boot: bootId() };
  }
  return selfCache;
}

/** Whether the process `rec` names is still running: see the module comment. */
export function alive(rec: ProcessRecord): boolean {
  if (!Number.isInteger(rec.pid) || rec.pid <= 0) return false;
  if (rec.boot !== undefined && plainBoot(rec.boot) !== plainBoot(bootId())) return false;
  let st: ProcessStat | undefined;
  try {
    st = statOf(rec.pid);
  } catch {
    // /proc hides other users' processes (hidepid): signal 0 says whether the pid exists
    // (EPERM: it does, and is someone else's); nothing more can be checked, so count it alive.
    return signalZero(rec.pid);
  }
  if (!st || st.state === 'Z') return false;
  return rec.start === undefined || rec.start === st.start;
}

/** Whether the record names this very process. */
export function isSelf(rec: ProcessRecord): boolean {
  const me = self();
  return rec.pid === me.pid && rec.start === me.start && (rec.boot === undefined || plainBoot(rec.boot) === plainBoot(me.boot));
}

/**
 * A record as a small text file: the pid alone on the first line, so anything that reads
 * a classic pid file (`kill $(head -1 berthd.pid)`, an older berth) still finds it, then
 * `start=` and `boot=` lines.
 */
export function formatRecord(rec: ProcessRecord): string {
  let s = `${rec.pid}\n`;
  if (rec.start !== undefined) s += `start=${rec.start}\n`;
  if (rec.boot !== undefined) s += `boot=${rec.boot}\n`;
  return s;
}

/** Read a record written by formatRecord, or an older one holding only a pid; undefined if it names no pid. */
export function parseRecord(text: string): ProcessRecord | undefined {
  const [first, ...rest] = text.split('\n');
  const pid = Number(first.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const rec: ProcessRecord = { pid };
  for (const line of rest) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    if (key === 'start' && /^\d+$/.test(value)) rec.start = Number(value);
    else if (key === 'boot' && value) rec.boot = value;
  }
  return rec;
}

/**
 * A record as one word for a file name: `PID.START.BOOT` (the boot id without dashes).
 * parseToken also reads a bare pid, the form older names carry.
 */
export function recordToken(rec: Required<ProcessRecord>): string {
  return `${rec.pid}.${rec.start}.${plainBoot(rec.boot)}`;
}

export function parseToken(token: string): ProcessRecord | undefined {
  const [pid, start, boot] = token.split('.');
  const rec: ProcessRecord = { pid: Number(pid) };
  if (!Number.isInteger(rec.pid) || rec.pid <= 0) return undefined;
  if (start !== undefined && /^\d+$/.test(start)) rec.start = Number(start);
  if (boot) rec.boot = boot;
  return rec;
}

/**
 * When the process a record names started, for messages; undefined if unknown. /proc counts
 * in USER_HZ, which Linux fixes at 100 for every user-space interface.
 */
export function startedAt(rec: ProcessRecord): Date | undefined {
  if (rec.start === undefined || (rec.boot !== undefined && plainBoot(rec.boot) !== plainBoot(bootId()))) return undefined;
  const btime = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
  return btime ? new Date(Number(btime[1]) * 1000 + rec.start * 10) : undefined;
}

function plainBoot(b: string): string {
  return b.replace(/-/g, '').toLowerCase();
}

/** Whether a process `pid` exists (signal 0; EPERM: it exists, owned by someone else). */
export function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
