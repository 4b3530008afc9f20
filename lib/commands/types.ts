import { finite } from '../camera';
import { checkActivations } from '../validate';
import type { Activations } from '../validate';

/** One `sr3d` subcommand (registered in lib/cli.ts). */
export interface Command {
  /** One line for `sr3d help`. */
  summary: string;
  /** The synopsis shown in `sr3d help`, e.g. `measure <scene> --region …`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit status. */
  run(args: string[]): number | Promise<number>;
}

/** A command-line mistake: one line on stderr, exit code 2. */
export class UsageError extends Error {}

/**
 * Parses a command's arguments; a {@link UsageError} becomes one line `sr3d <command>: …` on
 * stderr and `null` (the caller exits with 2). Other errors propagate.
 */
export function parseOrUsage<T>(command: string, parse: () => T): T | null {
  try {
    return parse();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`sr3d ${command}: ${e.message}\n`);
      return null;
    }
    throw e;
  }
}

/**
 * Walks a command's arguments: `--flag value` and `--flag=value` reach `on` with the flag and a
 * `value()` that takes the value (a UsageError naming the flag when there is none); any other
 * argument reaches `on` as itself. `usage` is the synopsis quoted in that error.
 */
export function walkArgs(args: readonly string[], usage: string, on: (flag: string, value: () => string) => void): void {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    on(flag, () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new UsageError(`Expected a value after ${flag} but received nothing. Fix: sr3d ${usage}`);
      return v;
    });
  }
}

/** A numeric flag value: a usage error naming the flag unless it is a number within `opts`. */
export function num(v: string, flag: string, opts: { int?: boolean; min?: number; max?: number }, example: string): number {
  const x = v.trim() === '' ? NaN : Number(v);
  const ok = finite(x) && (!opts.int || Number.isInteger(x)) && (opts.min === undefined || x >= opts.min) && (opts.max === undefined || x <= opts.max);
  if (!ok) {
    const what = `${opts.int ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}`;
    throw new UsageError(`Expected ${what} for ${flag} but received '${v}'. Fix: e.g. ${flag} ${example}`);
  }
  return x;
}

/** `--activations f32|int8|bf16` (ask, chat, eval): validate.ts's rule as a usage error. */
export function activationsFlag(v: string, flag = '--activations'): Activations {
  try {
    return checkActivations(v, flag);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}. Fix: e.g. ${flag} int8`);
  }
}

/** A value through the API's own validator (one rule for the API and the CLI), as a usage error naming the flag. */
export function checked(check: (v: unknown, name: string) => number, v: number, flag: string, example: string): number {
  try {
    return check(v, flag);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}. Fix: e.g. ${flag} ${example}`);
  }
}
