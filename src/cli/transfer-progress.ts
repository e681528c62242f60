import type { RegistryMessage } from '../images/registry/service';

/**
 * Docker's pull/push display: one line per layer (`<id>: <status> [====>   ] 1.2MB/3.4MB`),
 * redrawn in place on a terminal; elsewhere each layer's status is printed once when it
 * changes (no bars), so logs stay readable. Lines without an id print as they come.
 */
export function transferDisplay(out: NodeJS.WriteStream = process.stderr): { onMessage(m: RegistryMessage): void; done(): void } {
  const tty = !!out.isTTY;
  const order: string[] = [];
  const lines = new Map<string, string>();
  const lastStatus = new Map<string, string>();
  let drawn = 0;
  const render = (m: RegistryMessage) => {
    const d = m.progressDetail;
    let bar = '';
    if (d?.total && d.current !== undefined) {
      const width = 40;
      const filled = Math.min(width, Math.floor((d.current / d.total) * width));
      bar = ` [${'='.repeat(Math.max(0, filled - 1))}${filled ? '>' : ''}${' '.repeat(width - filled)}] ${size(d.current)}/${size(d.total)}`;
    }
    return `${m.id}: ${m.status ?? ''}${bar}`;
  };
  const redraw = () => {
    if (drawn) out.write(`\x1b[${drawn}A`);
    for (const id of order) out.write(`\x1b[2K${lines.get(id)}\n`);
    drawn = order.length;
  };
  return {
    onMessage(m) {
      if (!m.status) return;
      if (!m.id || /^(Pulling from|The push refers)/.test(m.status) || m.id === m.status) {
        if (tty && drawn) drawn = 0; // plain lines go below the layer block
        if (m.id && /^Pulling from/.test(m.status)) out.write(`${m.id}: ${m.status}\n`);
        else out.write(`${m.status}\n`);
        if (tty) order.length = 0;
        return;
      }
      if (!lines.has(m.id)) order.push(m.id);
      lines.set(m.id, render(m));
      if (tty) redraw();
      else if (lastStatus.get(m.id) !== m.status) {
        lastStatus.set(m.id, m.status);
        out.write(`${m.id}: ${m.status}\n`);
      }
    },
    done() {
      /* every line ended with a newline already */
    },
  };
}

function size(n: number): string {
  if (n < 1e3) return `${n}B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)}MB`;
  return `${(n / 1e9).toFixed(2)}GB`;
}
