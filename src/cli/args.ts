/** A small argv parser: `--flag value`, `--flag=value`, repeated flags, boolean flags. */
import { InvalidArgumentError } from '../errors';

export interface ParsedArgs {
  command: string | undefined;
  values: Map<string, string[]>;
  flags: Set<string>;
}

export function parseArgs(argv: readonly string[], booleanFlags: readonly string[]): ParsedArgs {
  const values = new Map<string, string[]>();
  const flags = new Set<string>();
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (booleanFlags.includes(name)) {
        flags.add(name);
        continue;
      }
      let v: string | undefined = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new InvalidArgumentError(`--${name} needs a value`);
      const list = values.get(name) ?? [];
      list.push(v);
      values.set(name, list);
    } else if (command === undefined) {
      command = a;
    } else {
      throw new InvalidArgumentError(`unexpected argument '${a}'`);
    }
  }
  return { command, values, flags };
}

export class Args {
  constructor(readonly p: ParsedArgs, readonly allowed: readonly string[]) {
    for (const k of p.values.keys()) {
      if (!allowed.includes(k)) throw new InvalidArgumentError(`unknown option --${k} for '${p.command}'`);
    }
  }
  get(name: string): string | undefined {
    const v = this.p.values.get(name);
    if (v && v.length > 1) throw new InvalidArgumentError(`--${name} given more than once`);
    return v?.[0];
  }
  need(name: string): string {
    const v = this.get(name);
    if (v === undefined) throw new InvalidArgumentError(`missing --${name}`);
    return v;
  }
  all(name: string): string[] {
    return this.p.values.get(name) ?? [];
  }
  int(name: string, def?: number): number | undefined {
    const v = this.get(name);
    if (v === undefined) return def;
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`--${name} must be an integer, got '${v}'`);
    return Number(v);
  }
  onOff(name: string): boolean | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (v === 'on') return true;
    if (v === 'off') return false;
    throw new InvalidArgumentError(`--${name} must be 'on' or 'off', got '${v}'`);
  }
}

/** Parse a comma-separated list of integers. */
export function parseIds(csv: string, what = '--ids'): number[] {
  const parts = csv.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new InvalidArgumentError(`${what} is empty`);
  return parts.map((s) => {
    if (!/^-?\d+$/.test(s)) throw new InvalidArgumentError(`${what}: '${s}' is not an integer`);
    return Number(s);
  });
}
