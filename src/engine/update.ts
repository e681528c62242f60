import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import type { ContainerAccess } from './container-access';
import { checkRestartPolicy, MIN_MEMORY } from './create-config';
import type { HostConfig, RestartPolicy } from './service';

/** POST /containers/{id}/update's body (Docker's UpdateConfig: Resources plus RestartPolicy). */
export interface UpdateBody {
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  PidsLimit?: number | null;
  RestartPolicy?: RestartPolicy;
  [k: string]: unknown;
}

/** What update honours; any other field set to something other than its zero value is refused. */
const HONOURED = new Set(['Memory', 'MemorySwap', 'NanoCpus', 'CpuQuota', 'CpuPeriod', 'PidsLimit', 'RestartPolicy']);
const CPU_PERIOD = 100_000;

function isZero(v: unknown): boolean {
  if (v === undefined || v === null || v === 0 || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.values(v as object).every(isZero);
  return false;
}

/**
 * `docker update`: new limits recorded and, on a running container, applied live through
 * the runtime (`runc update`), so they hold now and at every later start; a new restart
 * policy applies from the next exit. Refused with INVALID_ARGUMENT: a field berth cannot
 * apply (named), and values create would refuse. Zero values mean "unchanged", as Docker
 * reads the docker CLI's full UpdateConfig.
 */
export class ContainerUpdate {
  constructor(private readonly access: ContainerAccess) {}

  async update(ref: string, body: UpdateBody): Promise<{ Warnings: string[] }> {
    if (!body || typeof body !== 'object') throw new InvalidArgumentError('update needs a JSON body', { hint: 'send Docker\'s UpdateConfig' });
    for (const [k, v] of Object.entries(body)) {
      if (!HONOURED.has(k) && !isZero(v)) {
        throw new InvalidArgumentError(`update of ${k} is not supported`, { hint: 'berth updates Memory, MemorySwap, NanoCpus (--cpus), CpuQuota, CpuPeriod, PidsLimit and RestartPolicy; recreate the container for the rest' });
      }
    }
    const n = (k: keyof UpdateBody): number => {
      const v = body[k];
      if (v === undefined || v === null) return 0;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(`${String(k)} must be a number`, { hint: `give ${String(k)} in its unit` });
      return v;
    };
    const memory = n('Memory');
    const swap = n('MemorySwap');
    const nano = n('NanoCpus');
    const quota = n('CpuQuota');
    const period = n('CpuPeriod');
    if (memory < 0 || (memory > 0 && memory < MIN_MEMORY)) throw new InvalidArgumentError('Minimum memory limit allowed is 6MB', { hint: 'give at least --memory 6m' });
    if (nano < 0 || nano > 1024e9) throw new InvalidArgumentError('invalid CPU count', { hint: 'give a positive number of CPUs, e.g. --cpus 1.5' });
    if (nano > 0 && (quota > 0 || period > 0)) throw new InvalidArgumentError('Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set', { hint: 'use either --cpus or --cpu-quota/--cpu-period' });
    if (period !== 0 && (period < 1000 || period > 1_000_000)) throw new InvalidArgumentError('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)', { hint: 'give --cpu-period between 1000 and 1000000' });
    if (quota !== 0 && quota < 1000) throw new InvalidArgumentError('CPU cfs quota can not be less than 1ms (i.e. 1000)', { hint: 'give --cpu-quota of at least 1000' });
    const policy = body.RestartPolicy && body.RestartPolicy.Name ? body.RestartPolicy : undefined;

    return this.access.locked(ref, async (rec) => {
      const hc: HostConfig = { ...rec.HostConfig };
      if (memory > 0) {
        const oldSwap = hc.MemorySwap ?? 0;
        if (swap === 0 && oldSwap > 0 && oldSwap < memory) {
          throw new InvalidArgumentError('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time', { hint: 'give --memory-swap too' });
        }
        hc.Memory = memory;
      }
      if (swap !== 0) {
        if (!(hc.Memory ?? 0)) throw new InvalidArgumentError('You should always set the Memory limit when using Memoryswap limit, see usage', { hint: 'set --memory too' });
        if (swap > 0 && swap < (hc.Memory ?? 0)) throw new InvalidArgumentError('Minimum memoryswap limit should be larger than memory limit, see usage', { hint: 'give --memory-swap at least as large as --memory, or -1' });
        hc.MemorySwap = swap;
      }
      if (nano > 0) {
        hc.NanoCpus = nano;
        hc.CpuQuota = 0;
        hc.CpuPeriod = 0;
      }
      if (quota > 0 || period > 0) {
        if (hc.NanoCpus) throw new InvalidArgumentError('Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set', { hint: 'this container has --cpus: update --cpus instead' });
        if (quota > 0) hc.CpuQuota = quota;
        if (period > 0) hc.CpuPeriod = period;
      }
      if (body.PidsLimit !== undefined && body.PidsLimit !== null) hc.PidsLimit = n('PidsLimit') > 0 ? n('PidsLimit') : 0;
      if (policy) {
        if (hc.AutoRemove) throw new InvalidArgumentError('Restart policy cannot be updated because AutoRemove is enabled for the container', { hint: 'recreate the container without --rm' });
        hc.RestartPolicy = checkRestartPolicy(policy, false);
      }

      const running = rec.State.Status === 'running' || rec.State.Status === 'paused';
      if (running) {
        const args: string[] = [];
        if (memory > 0 || swap !== 0) {
          const mem = hc.Memory ?? 0;
          const sw = hc.MemorySwap ? hc.MemorySwap : mem * 2;
          args.push('--memory', String(mem), '--memory-swap', String(sw));
        }
        if (nano > 0) args.push('--cpu-quota', String(Math.round((nano / 1e9) * CPU_PERIOD)), '--cpu-period', String(CPU_PERIOD));
        if (quota > 0 || period > 0) args.push('--cpu-quota', String(hc.CpuQuota || -1), '--cpu-period', String(hc.CpuPeriod || CPU_PERIOD));
        if (body.PidsLimit !== undefined && body.PidsLimit !== null) args.push('--pids-limit', String(hc.PidsLimit || -1));
        if (args.length) {
          await this.access
            .runtimeFor(rec)
            .update(rec.Id, args)
            .catch((e) => {
              throw new FailedPreconditionError(`cannot update container ${rec.Name.slice(1)}: ${(e as Error).message}`, { hint: 'a memory limit below what the container uses now cannot be applied; give a larger one', cause: e });
            });
        }
      }
      rec.HostConfig = hc;
      await this.access.save(rec);
      this.access.emit(rec, 'update');
      return { Warnings: [] };
    });
  }
}
