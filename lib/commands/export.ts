/**
 * `sr3d export trtllm <checkpoint> <out>`: the TensorRT-LLM engine recipe (issue 14). Writes
 * `<out>/hf/`, the checkpoint's llm/ as the Hugging Face Qwen2 folder TensorRT-LLM's
 * `convert_checkpoint.py` reads (config.json, generation_config.json, tokenizer files, and the
 * safetensors linked, or copied with --copy), and prints the `convert_checkpoint.py` and
 * `trtllm-build` commands for v0.12.0-jetson and for current releases, with the prompt table
 * sized for the checkpoint's largest request (see {@link trtllmSizes}).
 */
import * as fs from 'fs';
import * as path from 'path';

import { loadCheckpoint } from '../checkpoint';
import type { Checkpoint } from '../checkpoint_types';
import { InvalidArgumentError } from '../errors';
import type { Command } from './types';
import { UsageError, parseOrUsage, walkArgs } from './types';

const USAGE = 'export trtllm <checkpoint> <out> [--copy] [--dtype bfloat16|float16] [--max-regions n] [--max-new-tokens n]';

/** The engine limits for a checkpoint's largest request. */
export interface TrtllmSizes {
  /** Projector rows per tile or frame (121 for NVILA at 448 px). */
  tokensPerTile: number;
  /** The most tiles of one image: max_tiles grid tiles + the thumbnail (12 + 1). */
  tiles: number;
  /** The most frames (num_video_frames, 32). */
  frames: number;
  /** Region rows allowed on top (one per region token in a question). */
  regions: number;
  /** `--max_prompt_embedding_table_size`: max(tiles, frames) · tokensPerTile + regions. */
  promptTableRows: number;
  /** `--max_input_len` and `--max_num_tokens`: the checkpoint's model_max_length (the splice's limit). */
  maxInputLen: number;
  /** `--max_seq_len`: maxInputLen + the most new tokens. */
  maxSeqLen: number;
}

/** Sizes the engine for `ckpt` (NVILA-Lite: 13 tiles or 32 frames of 121 rows, so 3872 + regions rows). */
export function trtllmSizes(ckpt: Checkpoint, o: { maxRegions: number; maxNewTokens: number }): TrtllmSizes {
  const T = ckpt.projector.config.tokensPerTile;
  const tiles = ckpt.config.maxTiles + (ckpt.config.maxTiles > 1 ? 1 : 0);
  const frames = ckpt.config.numVideoFrames;
  const maxInputLen = ckpt.config.modelMaxLength;
  return {
    tokensPerTile: T, tiles, frames, regions: o.maxRegions,
    promptTableRows: Math.max(tiles, frames) * T + o.maxRegions,
    maxInputLen, maxSeqLen: maxInputLen + o.maxNewTokens,
  };
}

/** The commands that build the engine from `<out>/hf`, for one TensorRT-LLM version. */
export function trtllmCommands(out: string, dtype: string, s: TrtllmSizes, version: 'v0.12.0-jetson' | 'main'): string[] {
  // The Qwen example moved under examples/models/core/ after v0.12.
  const convert = version === 'main' ? 'examples/models/core/qwen/convert_checkpoint.py' : 'examples/qwen/convert_checkpoint.py';
  const q = (p: string) => (/^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);
  const ckptDir = path.join(out, `trtllm-ckpt-${version}`), engineDir = path.join(out, `engine-${version}`);
  return [
    `python3 $TRTLLM/${convert} --model_dir ${q(path.join(out, 'hf'))} --output_dir ${q(ckptDir)} --dtype ${dtype}`,
    [
      `trtllm-build --checkpoint_dir ${q(ckptDir)} --output_dir ${q(engineDir)}`,
      `--gemm_plugin ${dtype} --max_batch_size 1 --max_beam_width 1`,
      `--max_input_len ${s.maxInputLen} --max_seq_len ${s.maxSeqLen} --max_num_tokens ${s.maxInputLen}`,
      // Block reuse (a chat follow-up reusing its prefix) needs paged context attention; v0.12 runs without reuse.
      `--max_prompt_embedding_table_size ${s.promptTableRows}${version === 'main' ? ' --use_paged_context_fmha enable' : ''}`,
    ].join(' \\\n    '),
  ];
}

const COPY_AS_IS = /\.(json|txt|model|tiktoken|py)$/;

/** Writes `<out>/hf` from the checkpoint's llm/; returns the files written. */
export function writeHfFolder(ckpt: Checkpoint, out: string, copy: boolean): string[] {
  const llmDir = path.join(ckpt.dir, 'llm');
  const hf = path.join(out, 'hf');
  if (fs.existsSync(hf) && fs.readdirSync(hf).length > 0) {
    throw new InvalidArgumentError(`Expected an empty or new folder for ${hf} but it holds files. Fix: pick another <out> or remove ${hf}.`);
  }
  fs.mkdirSync(hf, { recursive: true });
  const written: string[] = [];
  for (const name of fs.readdirSync(llmDir).sort()) {
    const from = path.join(llmDir, name);
    if (!fs.statSync(from).isFile()) continue;
    const to = path.join(hf, name);
    if (name.endsWith('.safetensors')) {
      // Links keep a 15 GB checkpoint from being duplicated; --copy for a folder that must move.
      if (copy) fs.copyFileSync(from, to);
      else fs.symlinkSync(fs.realpathSync(from), to);
    } else if (COPY_AS_IS.test(name)) {
      fs.copyFileSync(from, to);
    } else {
      continue;
    }
    written.push(name);
  }
  return written;
}

export const exportCommand: Command = {
  summary: "prepare a checkpoint's LLM for TensorRT-LLM: writes <out>/hf (its llm/ as a Hugging Face Qwen2 folder) and prints the convert_checkpoint.py and trtllm-build commands (v0.12.0-jetson and current) with the prompt table sized for the largest request",
  usage: USAGE,
  async run(args: string[]): Promise<number> {
    const parsed = parseOrUsage('export', () => {
      const pos: string[] = [];
      let copy = false, dtype: string | undefined, maxRegions = 16, maxNewTokens = 512;
      const int = (flag: string, v: string, lo: number, hi: number) => {
        const n = /^\d+$/.test(v) ? Number(v) : NaN;
        if (!(n >= lo && n <= hi)) throw new UsageError(`Expected an integer in [${lo}, ${hi}] for ${flag} but received ${v}. Fix: sr3d ${USAGE}`);
        return n;
      };
      walkArgs(args, USAGE, (flag, value) => {
        if (flag === '--copy') copy = true;
        else if (flag === '--dtype') {
          const v = value();
          if (v !== 'bfloat16' && v !== 'float16') throw new UsageError(`Expected bfloat16 or float16 for --dtype but received ${v}. Fix: sr3d ${USAGE}`);
          dtype = v;
        } else if (flag === '--max-regions') maxRegions = int(flag, value(), 0, 4096);
        else if (flag === '--max-new-tokens') maxNewTokens = int(flag, value(), 1, 1 << 20);
        else if (flag.startsWith('-')) throw new UsageError(`Unknown option ${flag}. Fix: sr3d ${USAGE}`);
        else pos.push(flag);
      });
      if (pos[0] !== 'trtllm') throw new UsageError(`Expected the target trtllm but received ${pos[0] ?? 'nothing'}. Fix: sr3d ${USAGE}`);
      if (pos.length !== 3) throw new UsageError(`Expected <checkpoint> and <out> after trtllm but received ${pos.length - 1} path(s). Fix: sr3d ${USAGE}`);
      return { ckptDir: pos[1], out: path.resolve(pos[2]), copy, dtype, maxRegions, maxNewTokens };
    });
    if (!parsed) return 2;
    try {
      const ckpt = await loadCheckpoint(parsed.ckptDir);
      const raw = ckpt.llm.config.raw;
      if (raw.quantization_config !== undefined) {
        throw new InvalidArgumentError(`Expected an unquantized llm/ for TensorRT-LLM's convert_checkpoint.py but ${path.join(ckpt.dir, 'llm', 'config.json')} has a quantization_config (sr3d quantize output). ` +
          'Fix: export the original checkpoint and quantize in TensorRT-LLM (convert_checkpoint.py --use_weight_only --weight_only_precision int4 or int8).');
      }
      if (raw.model_type !== undefined && raw.model_type !== 'qwen2') {
        throw new InvalidArgumentError(`Expected a Qwen2 llm/ (model_type qwen2) but ${path.join(ckpt.dir, 'llm', 'config.json')} has model_type ${JSON.stringify(raw.model_type)}. Fix: export an NVILA / SR-3D checkpoint.`);
      }
      const torchDtype = raw.torch_dtype === 'float16' ? 'float16' : 'bfloat16';
      const dtype = parsed.dtype ?? torchDtype;
      const sizes = trtllmSizes(ckpt, parsed);
      const files = writeHfFolder(ckpt, parsed.out, parsed.copy);
      const o = (s: string) => process.stdout.write(s + '\n');
      o(`wrote ${path.join(parsed.out, 'hf')}: ${files.join(', ')}${parsed.copy ? '' : ' (safetensors linked to the checkpoint)'}`);
      o('');
      o(`prompt table: max(${sizes.tiles} tiles, ${sizes.frames} frames) x ${sizes.tokensPerTile} rows + ${sizes.regions} region rows = ${sizes.promptTableRows} rows (--max_prompt_embedding_table_size, alias --max_multimodal_len)`);
      o(`prompt: at most ${sizes.maxInputLen} positions (model_max_length), + ${parsed.maxNewTokens} new tokens = max_seq_len ${sizes.maxSeqLen}; batch size 1 (sr3d runs one request at a time)`);
      o('');
      o('Set TRTLLM to your TensorRT-LLM source checkout (for examples/), then:');
      for (const version of ['v0.12.0-jetson', 'main'] as const) {
        o('');
        o(`# TensorRT-LLM ${version === 'main' ? 'current (main, after v0.12)' : 'v0.12.0-jetson (Jetson AGX Orin, JetPack 6)'}`);
        for (const c of trtllmCommands(parsed.out, dtype, sizes, version)) o(c);
      }
      o('');
      o(`Then: SR3D.load('${ckpt.dir}', { llm: { backend: 'tensorrt-llm', engineDir: '${path.join(parsed.out, 'engine-<version>')}' } })`);
      return 0;
    } catch (e) {
      if (e instanceof InvalidArgumentError) {
        process.stderr.write(`sr3d export: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  },
};
