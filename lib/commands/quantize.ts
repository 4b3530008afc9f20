/**
 * `sr3d quantize <in> <out> --bits 4|8 [--group 128] [--lm-head] [--embeddings]`: round-to-nearest
 * int4 (AWQ gemm) or int8 (GPTQ symmetric per-channel) LLM projections, lm_head too with
 * --lm-head, the embedding table (and a tied lm_head) too with --embeddings; see
 * lib/quantize_checkpoint.ts.
 */
import { InvalidArgumentError } from '../errors';
import { quantizeCheckpoint } from '../quantize_checkpoint';
import type { Command } from './types';

const USAGE = 'quantize <in> <out> --bits 4|8 [--group n] [--lm-head] [--embeddings]';

function usageError(msg: string): number {
  process.stderr.write(`sr3d quantize: ${msg}\nUsage: sr3d ${USAGE}\n`);
  return 2;
}

export const quantizeCommand: Command = {
  summary: 'write a copy of a checkpoint with its LLM projections quantized by round-to-nearest: int4 as AWQ gemm (group 128 by default), int8 as GPTQ symmetric per-channel; --lm-head quantizes lm_head too (recorded as "lm_head": true), --embeddings the embedding table and a tied lm_head (recorded as "embed_tokens": true; read by sr3d only)',
  usage: USAGE,
  async run(args: string[]): Promise<number> {
    let bits: 4 | 8 | undefined;
    let group: number | undefined;
    let lmHead = false, embeddings = false;
    const dirs: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      const value = (): string | undefined => (i + 1 < args.length ? args[++i] : undefined);
      if (a === '--bits') {
        const v = value();
        if (v !== '4' && v !== '8') return usageError(`expected 4 or 8 for --bits but received ${v ?? 'nothing'}`);
        bits = Number(v) as 4 | 8;
      } else if (a === '--group') {
        const v = value();
        const n = v !== undefined && /^-?\d+$/.test(v) ? Number(v) : NaN;
        if (!Number.isSafeInteger(n)) return usageError(`expected an integer for --group but received ${v ?? 'nothing'}`);
        group = n;
      } else if (a === '--lm-head') {
        lmHead = true;
      } else if (a === '--embeddings') {
        embeddings = true;
      } else if (a.startsWith('-')) {
        return usageError(`unknown option ${a}`);
      } else {
        dirs.push(a);
      }
    }
    if (dirs.length !== 2) return usageError(`expected <in> and <out> folders but received ${dirs.length} path(s)`);
    if (bits === undefined) return usageError('expected --bits 4 or --bits 8');
    try {
      const r = await quantizeCheckpoint(dirs[0], dirs[1], { bits, group, lmHead, embeddings });
      const what = r.embeddings
        ? `matrices (${r.lmHead === 'quantized' ? 'lm_head and ' : ''}the embedding table${r.lmHead === 'tied' ? ', also the tied lm_head,' : ''} included)`
        : r.lmHead === 'quantized' ? 'linears (lm_head included)' : 'projections';
      process.stdout.write(`wrote ${r.outDir}: ${r.quantized} LLM ${what} as int${bits} (round-to-nearest), LLM weights ${(r.bytesIn / 2 ** 20).toFixed(1)} MiB -> ${(r.bytesOut / 2 ** 20).toFixed(1)} MiB\n`);
      return 0;
    } catch (e) {
      if (e instanceof InvalidArgumentError) {
        process.stderr.write(`sr3d quantize: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  },
};
