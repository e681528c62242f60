import { constants } from 'node:os';
import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Signals as Docker takes them: a name with or without SIG ('TERM', 'SIGKILL'), any case,
 * or a number ('9'). Returned as the canonical name ('SIGTERM') and number.
 */
export function parseSignal(s: string | number): { name: string; number: number } {
  const table = constants.signals as Record<string, number>;
  const text = String(s).trim();
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    const name = Object.keys(table).find((k) => table[k] === n);
    if (name && n > 0) return { name, number: n };
  } else {
    const up = text.toUpperCase();
    const name = up.startsWith('SIG') ? up : `SIG${up}`;
    if (table[name] !== undefined) return { name, number: table[name] };
  }
  throw new InvalidArgumentError(`Invalid signal: ${text}`, { hint: 'give a signal name such as TERM, KILL, HUP, or its number' });
}
