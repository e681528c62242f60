import { tool } from '../../volumes/shared/host-tool';
import type { Rule, Table } from './rules';

/**
 * The one executor of rule plans. It writes whole chains with `iptables-restore
 * --noflush`: a chain declared in the input is flushed and refilled in one transaction,
 * so applying a plan is atomic and idempotent (the same plan twice gives the same rules,
 * and stale rules of a crashed daemon are simply overwritten). Jumps from the built-in
 * chains are added only where missing, found in one `iptables-save`.
 */

const TABLES: Table[] = ['raw', 'nat', 'filter'];

export interface Executor {
  /** Replace the contents of `chains` with `rules` (all of them must be in `chains`), and ensure `jumps`. */
  apply(chains: Array<{ table: Table; chain: string }>, rules: Rule[], jumps?: Rule[]): Promise<void>;
  /** Remove every jump into `chains`, then the chains themselves. */
  remove(chains: Array<{ table: Table; chain: string }>): Promise<void>;
}

interface Saved {
  /** table -> chain names that exist */
  chains: Map<Table, Set<string>>;
  /** table -> `-A CHAIN args` lines */
  rules: Map<Table, string[]>;
}

async function save(): Promise<Saved> {
  const text = await tool('iptables-save', []);
  const chains = new Map<Table, Set<string>>();
  const rules = new Map<Table, string[]>();
  let table: Table | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      const t = line.slice(1) as Table;
      table = TABLES.includes(t) ? t : undefined;
      if (table) {
        chains.set(table, new Set());
        rules.set(table, []);
      }
    } else if (table && line.startsWith(':')) chains.get(table)!.add(line.slice(1).split(' ')[0]);
    else if (table && line.startsWith('-A ')) rules.get(table)!.push(line);
  }
  return { chains, rules };
}

function targets(line: string, chain: string): boolean {
  return line.endsWith(` -j ${chain}`) || line.includes(` -j ${chain} `) || line.endsWith(` -g ${chain}`);
}

export class IptablesExecutor implements Executor {
  async apply(chains: Array<{ table: Table; chain: string }>, rules: Rule[], jumps: Rule[] = []): Promise<void> {
    let missing: Rule[] = jumps;
    if (jumps.length > 0) {
      const saved = await save();
      missing = jumps.filter((j) => !(saved.rules.get(j.table) ?? []).some((l) => l.startsWith(`-A ${j.chain} `) && targets(l, j.args[j.args.length - 1])));
    }
    const out: string[] = [];
    for (const t of TABLES) {
      const own = chains.filter((c) => c.table === t);
      const add = missing.filter((j) => j.table === t);
      if (own.length === 0 && add.length === 0) continue;
      out.push(`*${t}`);
      for (const c of own) out.push(`:${c.chain} - [0:0]`);
      for (const r of rules.filter((x) => x.table === t)) out.push(['-A', r.chain, ...r.args].join(' '));
      for (const j of add) out.push(['-I', j.chain, '1', ...j.args].join(' '));
      out.push('COMMIT');
    }
    if (out.length) await tool('iptables-restore', ['-w', '5', '--noflush'], { input: out.join('\n') + '\n' });
  }

  async remove(chains: Array<{ table: Table; chain: string }>): Promise<void> {
    const saved = await save();
    const out: string[] = [];
    for (const t of TABLES) {
      const existing = saved.chains.get(t) ?? new Set<string>();
      const own = chains.filter((c) => c.table === t && existing.has(c.chain));
      if (own.length === 0) continue;
      out.push(`*${t}`);
      for (const line of saved.rules.get(t) ?? []) {
        const [, chain] = line.split(' ');
        if (own.some((c) => c.chain !== chain && targets(line, c.chain))) out.push('-D' + line.slice(2));
      }
      for (const c of own) out.push(`:${c.chain} - [0:0]`);
      for (const c of own) out.push(`-X ${c.chain}`);
      out.push('COMMIT');
    }
    if (out.length) await tool('iptables-restore', ['-w', '5', '--noflush'], { input: out.join('\n') + '\n' });
  }
}
