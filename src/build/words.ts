import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Docker's shell-word lexer for Dockerfile arguments (moby's ShellLex), in small: quotes
 * and the escape character are processed, and `$V`, `${V}`, `${V:-w}`, `${V-w}`,
 * `${V:+w}`, `${V+w}`, `${V:?msg}` and `${V?msg}` are substituted from `env`. Anything
 * else after `${V` is refused, naming the line. RUN, CMD and ENTRYPOINT are never passed
 * through here: their shell does its own expansion, as in Docker.
 */

export type Env = ReadonlyMap<string, string>;

/** The words of `src`, quotes removed and variables substituted. */
export function words(src: string, env: Env, escape = '\\', line?: number): string[] {
  return new Lexer(src, env, escape, line).words();
}

/** One word: the whole of `src` processed as a single word (whitespace kept). */
export function word(src: string, env: Env, escape = '\\', line?: number): string {
  return new Lexer(src, env, escape, line).single();
}

/** The names `src` refers to as $V or ${V...} (for the cache key of RUN's build args). */
export function mentions(src: string): string[] {
  const out = new Set<string>();
  for (const m of src.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) out.add(m[1]);
  return [...out];
}

class Lexer {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly env: Env,
    private readonly esc: string,
    private readonly line?: number,
  ) {}

  words(): string[] {
    const out: string[] = [];
    for (;;) {
      while (this.i < this.s.length && /\s/.test(this.s[this.i])) this.i++;
      if (this.i >= this.s.length) return out;
      out.push(this.word(true));
    }
  }

  single(): string {
    return this.word(false);
  }

  private word(stopAtSpace: boolean): string {
    let out = '';
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (stopAtSpace && /\s/.test(c)) break;
      if (c === this.esc) {
        this.i++;
        if (this.i < this.s.length) out += this.s[this.i++];
        else out += c;
      } else if (c === "'") {
        out += this.singleQuoted();
      } else if (c === '"') {
        this.i++;
        out += this.doubleQuoted();
      } else if (c === '$') {
        out += this.dollar();
      } else {
        out += c;
        this.i++;
      }
    }
    return out;
  }

  private singleQuoted(): string {
    const end = this.s.indexOf("'", this.i + 1);
    if (end < 0) throw this.fail('unexpected end of statement while looking for matching single-quote');
    const out = this.s.slice(this.i + 1, end);
    this.i = end + 1;
    return out;
  }

  private doubleQuoted(): string {
    let out = '';
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === this.esc) {
        const n = this.s[this.i + 1];
        // Inside double quotes the escape only escapes ", $ and itself (as a shell does).
        if (n === '"' || n === '$' || n === this.esc) {
          out += n;
          this.i += 2;
          continue;
        }
        out += c;
        this.i++;
      } else if (c === '$') {
        out += this.dollar();
      } else {
        out += c;
        this.i++;
      }
    }
    throw this.fail('unexpected end of statement while looking for matching double-quote');
  }

  private dollar(): string {
    this.i++; // '$'
    const c = this.s[this.i];
    if (c === '{') {
      this.i++;
      const name = this.name();
      if (!name) throw this.fail('bad substitution: a variable name must follow ${');
      if (this.s[this.i] === '}') {
        this.i++;
        return this.env.get(name) ?? '';
      }
      const colon = this.s[this.i] === ':';
      if (colon) this.i++;
      const op = this.s[this.i];
      if (op !== '-' && op !== '+' && op !== '?') {
        throw this.fail(`unsupported substitution \${${name}${colon ? ':' : ''}${op ?? ''}...}: berth supports \${V}, \${V:-word}, \${V-word}, \${V:+word}, \${V+word} and \${V:?message}`);
      }
      this.i++;
      const w = this.untilBrace();
      const set = this.env.has(name);
      const value = this.env.get(name) ?? '';
      const present = colon ? set && value !== '' : set;
      if (op === '-') return present ? value : w;
      if (op === '+') return present ? w : '';
      if (!present) throw this.fail(`${name}: ${w || 'is not allowed to be unset'}`);
      return value;
    }
    const name = this.name();
    if (!name) return '$';
    return this.env.get(name) ?? '';
  }

  /** The word inside ${V:-word}, itself processed (quotes, nested variables). */
  private untilBrace(): string {
    let out = '';
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '}') {
        this.i++;
        return out;
      }
      if (c === this.esc) {
        this.i++;
        if (this.i < this.s.length) out += this.s[this.i++];
      } else if (c === "'") {
        out += this.singleQuoted();
      } else if (c === '"') {
        this.i++;
        out += this.doubleQuoted();
      } else if (c === '$') out += this.dollar();
      else {
        out += c;
        this.i++;
      }
    }
    throw this.fail('missing } in a ${...} substitution');
  }

  private name(): string {
    const m = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9]/.exec(this.s.slice(this.i));
    if (!m) return '';
    this.i += m[0].length;
    return m[0];
  }

  private fail(msg: string): InvalidArgumentError {
    return new InvalidArgumentError(this.line !== undefined ? `Dockerfile line ${this.line}: ${msg}` : msg, { hint: 'fix the quoting or the substitution on that line' });
  }
}
