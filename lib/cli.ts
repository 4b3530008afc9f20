/**
 * The `sr3d` command line.
 *   sr3d info [--json]   what the native binary was built with and which GPUs it can use
 *   sr3d build           build the native addon from source (CPU; CUDA when nvcc is found)
 * Further commands live one per file in lib/commands/ and register in COMMANDS below.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { buildInfo, devices } from './info';
import { packageRoot } from './native';
import type { Command } from './commands/types';
import { importCommand } from './commands/import';
import { askCommand, chatCommand } from './commands/ask';
import { tinyModelCommand } from './commands/tiny_model';
import { measureCommand } from './commands/measure';
import { evalCommand } from './commands/eval';
import { quantizeCommand } from './commands/quantize';
import { exportCommand } from './commands/export';

// Commands defined in lib/commands/*.ts: name -> { summary, usage, run(args) }.
const COMMANDS: Record<string, Command> = {
  import: importCommand,
  'tiny-model': tinyModelCommand,
  measure: measureCommand,
  ask: askCommand,
  chat: chatCommand,
  eval: evalCommand,
  quantize: quantizeCommand,
  export: exportCommand,
};

const USAGE_TEXT = `Usage: sr3d <command> [options]

Commands:
  info [--json]   show the build (CUDA version and archs, CPU threads and SIMD) and usable GPUs
  build [--tests] build the native addon from source (needs cmake and a C++17 compiler; nvcc for CUDA,
                  e.g. JetPack's on a Jetson); --tests also builds the C++ kernel tests (CUDA vs CPU)
  help            show this text
__COMMANDS__

Environment:
  SR3D_DEVICE=cpu|cuda   force the CPU or CUDA binary (default: CUDA only when a GPU is usable)
  SR3D_NUM_THREADS=n     CPU worker threads
  SR3D_MODEL=<dir>       the checkpoint folder for sr3d ask (instead of --model)
  NODE_DEBUG=sr3d        print how the binary was chosen`;
const usage = (): string =>
  USAGE_TEXT.replace('__COMMANDS__\n', Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}\n`).join(''));

function info(json: boolean): number {
  const b = buildInfo();
  const d = devices({ freeMemory: true });
  if (json) {
    process.stdout.write(JSON.stringify({ ...b, devices: d }, null, 2) + '\n');
    return 0;
  }
  const lines = [
    `sr3d ${b.version}`,
    `binary:   ${b.binary.variant} (${b.binary.path})`,
    `          ${b.binary.reason}`,
    `cuda:     ${b.cuda.compiled ? `compiled, CUDA ${b.cuda.version}, ${b.cuda.archs.join(' ')}` : 'not compiled into the loaded binary'}`,
    `cpu:      ${b.cpu.threads} threads, ${b.cpu.simd}${b.cpu.features.length ? ` (${b.cpu.features.join(' ')})` : ''}`,
    `devices:  ${d.length ? '' : 'none'}`,
    ...d.map((x) => `  [${x.index}] ${x.name}, ${(x.totalMemory / 2 ** 30).toFixed(1)} GiB` +
      `${x.freeMemory !== undefined ? ` (${(x.freeMemory / 2 ** 30).toFixed(1)} GiB free${x.integrated ? ', shared with the CPU' : ''})` : ''}, ` +
      `compute ${x.computeCapability}, ${x.multiprocessors} SMs${x.integrated ? ', integrated' : ''}, ` +
      `zero copy ${x.zeroCopy ? 'on' : 'off'}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

export function main(argv: string[]): number | Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'info':
      return info(rest.includes('--json'));
    case 'build': {
      // --tests also builds the standalone C++ kernel tests (then: ctest --test-dir <sr3d>/build).
      const r = spawnSync(process.execPath, [path.join(packageRoot, 'scripts', 'build-native.js'), ...rest.filter((a) => a === '--tests')], { stdio: 'inherit', cwd: packageRoot });
      return r.status ?? 1;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage() + '\n');
      return cmd === undefined ? 1 : 0;
    default:
      if (COMMANDS[cmd]) return COMMANDS[cmd].run(rest);
      process.stderr.write(`sr3d: unknown command '${cmd}'\n\n${usage()}\n`);
      return 2;
  }
}
