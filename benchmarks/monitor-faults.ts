import * as fs from 'node:fs';
import { Row, report, timeIt } from './lib';
import { BenchDaemon } from './daemon';

/**
 * `rm -f` and `stop` of a container whose berth-monitor was SIGKILLed (issue 18), side by
 * side with the same calls on a healthy container. test/api/monitor-faults.test.ts asserts
 * only that they finish and leave nothing (a 30 s hang guard); the time is this row's claim.
 * Each call comes right after the kill, before the daemon's monitor poll (every 5 s) would
 * notice: the path measured is the request finding the monitor gone by itself.
 * Target: rm -f / stop of an orphan within 5 s (issue 18), and close to the healthy ones.
 */
export async function benchMonitorFaults(work: string, rounds = 5): Promise<void> {
  const d = await BenchDaemon.start(work);
  try {
    d.berth(['run', '--rm', 'busybox', 'true']); // makes busybox, warms caches
    const rows: Row[] = [
      { what: 'berth rm -f (healthy container)', ms: [] },
      { what: 'berth rm -f (monitor SIGKILLed)', ms: [] },
      { what: 'berth stop -t 1 (healthy, sleep as PID 1)', ms: [] },
      { what: 'berth stop -t 1 (monitor SIGKILLed)', ms: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      const sleeper = (name: string) => d.berth(['run', '-d', '--name', `${name}${i}`, 'busybox', 'sleep', '100000']).trim();
      sleeper('ok');
      rows[0].ms.push(timeIt(() => d.berth(['rm', '-f', `ok${i}`])));
      killMonitor(d, sleeper('orphan'));
      rows[1].ms.push(timeIt(() => d.berth(['rm', '-f', `orphan${i}`])));
      sleeper('stop');
      rows[2].ms.push(timeIt(() => d.berth(['stop', '-t', '1', `stop${i}`])));
      killMonitor(d, sleeper('ostop'));
      rows[3].ms.push(timeIt(() => d.berth(['stop', '-t', '1', `ostop${i}`])));
      d.berth(['rm', '-f', `stop${i}`, `ostop${i}`]);
    }
    report('rm -f and stop of a container whose monitor was killed', rows, 'the orphan rows within 5 s (issue 18), near the healthy ones');
  } finally {
    await d.stop();
  }
}

/** SIGKILL the berth-monitor of container `id` (its init's parent). */
function killMonitor(d: BenchDaemon, id: string): void {
  const pid = Number(d.berth(['inspect', '-f', '{{.State.Pid}}', id]).trim());
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const monitor = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  if (!fs.readFileSync(`/proc/${monitor}/cmdline`, 'utf8').includes('berth-monitor')) throw new Error(`the parent ${monitor} of ${pid} is not berth-monitor`);
  process.kill(monitor, 'SIGKILL');
}
