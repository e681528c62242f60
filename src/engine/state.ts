import type { ExitRecord } from '../runtime/monitor';
import type { ContainerRecord } from './container-record';

/**
 * The container's state machine, the one place that writes a record's `State` (and the
 * run's MonitorPid and the RestartCount that go with it). A record starts as newState()
 * (container-record.ts); the engine's rooms check whether a change is allowed, and this
 * applies it:
 *
 *   created|exited --started--> running --paused--> paused --unpaused--> running
 *   created|exited|restarting --start-failed--> exited
 *   running|paused --exited--> exited, or restarting (by the restart policy)
 *   restarting --restart-canceled--> exited          (stop while waiting to restart)
 *   running|paused --adopted--> running|paused       (what runc says, at daemon start)
 *
 * The caller saves the record.
 */
export type StateEvent =
  | { type: 'started'; pid: number; monitorPid: number; at: string }
  | { type: 'start-failed'; exitCode: number; error: string; at: string }
  | { type: 'exited'; exit: ExitRecord; restart: boolean }
  | { type: 'restart-canceled' }
  | { type: 'paused' }
  | { type: 'unpaused' }
  | { type: 'adopted'; paused: boolean };

export function transition(rec: ContainerRecord, ev: StateEvent): void {
  const s = rec.State;
  switch (ev.type) {
    case 'started':
      rec.State = { ...s, Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: ev.pid, ExitCode: 0, Error: '', StartedAt: ev.at };
      rec.MonitorPid = ev.monitorPid;
      return;
    case 'start-failed':
      rec.State = { ...s, Status: 'exited', Running: false, Paused: false, Restarting: false, Pid: 0, ExitCode: ev.exitCode, Error: ev.error, FinishedAt: ev.at };
      rec.MonitorPid = 0;
      return;
    case 'exited': {
      const r = ev.restart;
      const x = ev.exit;
      rec.State = { ...s, Status: r ? 'restarting' : 'exited', Running: r, Paused: false, Restarting: r, Pid: 0, ExitCode: x.exitCode, OOMKilled: x.oomKilled, Error: '', FinishedAt: x.finishedAt };
      rec.MonitorPid = 0;
      if (r) rec.RestartCount++;
      return;
    }
    case 'restart-canceled':
      rec.State = { ...s, Status: 'exited', Running: false, Restarting: false };
      return;
    case 'paused':
      rec.State = { ...s, Status: 'paused', Paused: true };
      return;
    case 'unpaused':
      rec.State = { ...s, Status: 'running', Paused: false };
      return;
    case 'adopted':
      rec.State = { ...s, Status: ev.paused ? 'paused' : 'running', Paused: ev.paused };
      return;
  }
}

/** Running, paused or waiting to restart: what `ps` shows without -a, and what rm refuses without -f. */
export function isActive(rec: ContainerRecord): boolean {
  const s = rec.State.Status;
  return s === 'running' || s === 'paused' || s === 'restarting';
}

/** A run is under way (its process exists, perhaps frozen). */
export function isUp(rec: ContainerRecord): boolean {
  return rec.State.Status === 'running' || rec.State.Status === 'paused';
}
