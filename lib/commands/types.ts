/** One `sr3d` subcommand (registered in lib/cli.ts). */
export interface Command {
  /** One line for `sr3d help`. */
  summary: string;
  /** The synopsis shown in `sr3d help`, e.g. `measure <scene> --region …`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit status. */
  run(args: string[]): number | Promise<number>;
}
