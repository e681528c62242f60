import { InvalidArgumentError } from '../../volumes/shared/errors';
import { humanDuration } from '../units';

/** Output helpers shaped like the docker CLI's: tables, sizes, ages and --format. */

/** Docker's tabwriter look: columns padded to the widest cell plus three spaces. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] + 3))).join('').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Sizes the way docker prints them (decimal units, 3 significant digits): 4.26MB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/** "2 minutes ago": docker's units.HumanDuration (the same table as ps's STATUS). */
export function ago(unixSeconds: number, now = Date.now()): string {
  return humanDuration(Math.max(0, now - unixSeconds * 1000)) + ' ago';
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * `--format`: `json` (one JSON object per line, as docker does), or a Go-template subset
 * that covers what scripts use: `{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`,
 * and a leading `table ` for a header row.
 */
export function formatItems(format: string, items: object[]): string {
  if (format === 'json') return items.map((i) => JSON.stringify(i)).join('\n') + (items.length ? '\n' : '');
  const isTable = format.startsWith('table ');
  const tpl = (isTable ? format.slice(6) : format).replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const out = items.map((it) => render(tpl, it));
  if (isTable) {
    const header = tpl.replace(/\{\{\s*(?:json\s+)?\.([\w.]*)\s*\}\}/g, (_m, f: string) => toHeader(f || 'VALUE'));
    const rows = [header, ...out].map((l) => l.split('\t'));
    return table(rows[0], rows.slice(1));
  }
  return out.join('\n') + (out.length ? '\n' : '');
}

const ACTION = /\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}/g;

export function render(tpl: string, item: object): string {
  // Anything between {{ }} outside the subset (functions, pipes, range/if, literals) is
  // refused: printing it as is would silently ignore what the user asked for.
  const other = tpl.replace(ACTION, '').match(/\{\{.*?\}\}/);
  if (other) {
    throw new InvalidArgumentError(`template: ${other[0]} is not supported`, {
      hint: 'berth supports {{.Field}}, {{.A.B}}, {{json .}}, {{json .Field}} and a leading "table "; use --format json and a JSON tool for more',
    });
  }
  return tpl.replace(ACTION, (_m, json: string | undefined, field: string) => {
    let v: unknown = item;
    for (const part of field ? field.split('.') : []) {
      if (v === null || typeof v !== 'object' || !(part in (v as object))) {
        throw new InvalidArgumentError(`template: no field ${field}`, { hint: `fields: ${Object.keys(item).join(', ')}` });
      }
      v = (v as Record<string, unknown>)[part];
    }
    if (json || (v !== null && typeof v === 'object')) return JSON.stringify(v);
    return v === null || v === undefined ? '<no value>' : String(v);
  });
}

function toHeader(field: string): string {
  return field.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
}
