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
