// `sr3d export trtllm <checkpoint> <out>`: the Hugging Face folder it writes from llm/ (files
// copied, safetensors linked or copied), the printed convert_checkpoint.py / trtllm-build
// commands for both TensorRT-LLM versions with the prompt table sized for the checkpoint, and
// the argument and checkpoint errors.
import fs from 'fs';
import os from 'os';
import path from 'path';

import { exportCommand } from '../lib/commands/export';
import { quantizeCheckpoint } from '../lib/quantize_checkpoint';
import { writeTinyModel } from '../lib/tinymodel';

let root: string, ckpt: string;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-export-'));
  ckpt = path.join(root, 'ckpt');
  await writeTinyModel(ckpt, { seed: 2 });
}, 120000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true; });
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => { err += String(s); return true; });
  try {
    const code = await exportCommand.run(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('sr3d export trtllm', () => {
  it('writes hf/ from llm/ (safetensors linked) and prints both versions\' commands sized for 13 tiles or 32 frames of 121 rows', async () => {
    const out = path.join(root, 'out');
    const r = await run(['trtllm', ckpt, out]);
    expect([r.code, r.err]).toEqual([0, '']);
    const llm = path.join(ckpt, 'llm'), hf = path.join(out, 'hf');
    for (const f of fs.readdirSync(llm)) {
      const to = path.join(hf, f);
      if (f.endsWith('.safetensors')) {
        expect(fs.lstatSync(to).isSymbolicLink()).toBe(true);
        expect(fs.realpathSync(to)).toBe(fs.realpathSync(path.join(llm, f)));
      } else {
        expect(fs.readFileSync(to).equals(fs.readFileSync(path.join(llm, f)))).toBe(true);
      }
    }
    expect(fs.readdirSync(hf).sort()).toEqual(fs.readdirSync(llm).sort());
    expect(fs.readdirSync(hf)).toEqual(expect.arrayContaining(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']));
    // The tiny model has NVILA-Lite's max_tiles 12 and num_video_frames 32 at 121 rows per tile.
    expect(r.out).toContain('prompt table: max(13 tiles, 32 frames) x 121 rows + 16 region rows = 3888 rows (--max_prompt_embedding_table_size, alias --max_multimodal_len)');
    expect(r.out).toContain('prompt: at most 4096 positions (model_max_length), + 512 new tokens = max_seq_len 4608');
    expect(r.out).toContain(`python3 $TRTLLM/examples/qwen/convert_checkpoint.py --model_dir ${hf} --output_dir ${path.join(out, 'trtllm-ckpt-v0.12.0-jetson')} --dtype bfloat16`);
    expect(r.out).toContain(`python3 $TRTLLM/examples/models/core/qwen/convert_checkpoint.py --model_dir ${hf} --output_dir ${path.join(out, 'trtllm-ckpt-main')} --dtype bfloat16`);
    const builds = r.out.split('\n').filter((l) => l.startsWith('trtllm-build'));
    expect(builds).toEqual([
      `trtllm-build --checkpoint_dir ${path.join(out, 'trtllm-ckpt-v0.12.0-jetson')} --output_dir ${path.join(out, 'engine-v0.12.0-jetson')} \\`,
      `trtllm-build --checkpoint_dir ${path.join(out, 'trtllm-ckpt-main')} --output_dir ${path.join(out, 'engine-main')} \\`,
    ]);
    expect(r.out).toContain('    --gemm_plugin bfloat16 --max_batch_size 1 --max_beam_width 1 \\\n    --max_input_len 4096 --max_seq_len 4608 --max_num_tokens 4096 \\\n    --max_prompt_embedding_table_size 3888\n');
    expect(r.out).toContain('    --max_prompt_embedding_table_size 3888 --use_paged_context_fmha enable\n');
    expect(r.out).toContain(`engineDir: '${path.join(out, 'engine-<version>')}'`);
  });

  it('--copy copies the safetensors; --dtype, --max-regions and --max-new-tokens change the numbers', async () => {
    const out = path.join(root, 'out-copy');
    const r = await run(['trtllm', ckpt, out, '--copy', '--dtype=float16', '--max-regions', '0', '--max-new-tokens', '100']);
    expect(r.code).toBe(0);
    for (const f of fs.readdirSync(path.join(out, 'hf')).filter((x) => x.endsWith('.safetensors'))) {
      expect(fs.lstatSync(path.join(out, 'hf', f)).isSymbolicLink()).toBe(false);
      expect(fs.readFileSync(path.join(out, 'hf', f)).equals(fs.readFileSync(path.join(ckpt, 'llm', f)))).toBe(true);
    }
    expect(r.out).toContain('= 3872 rows');
    expect(r.out).toContain('--max_seq_len 4196');
    expect(r.out).toContain('--dtype float16');
    expect(r.out).toContain('--gemm_plugin float16');
  });

  it('argument mistakes exit 2 with one line naming the fix', async () => {
    const cases: [string[], RegExp][] = [
      [[], /Expected the target trtllm but received nothing/],
      [['onnx', ckpt, root], /Expected the target trtllm but received onnx/],
      [['trtllm', ckpt], /Expected <checkpoint> and <out> after trtllm but received 1 path/],
      [['trtllm', ckpt, root, '--dtype', 'int8'], /Expected bfloat16 or float16 for --dtype but received int8/],
      [['trtllm', ckpt, root, '--max-regions', '-1'], /Expected an integer in \[0, 4096\] for --max-regions but received -1/],
      [['trtllm', ckpt, root, '--max-new-tokens'], /Expected a value after --max-new-tokens/],
      [['trtllm', ckpt, root, '--fast'], /Unknown option --fast/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      expect([args, r.code, r.out]).toEqual([args, 2, '']);
      expect(r.err).toMatch(new RegExp(`^sr3d export: ${re.source}.*Fix: sr3d export trtllm <checkpoint> <out>`));
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });

  it('a missing checkpoint, a quantized llm/ or a non-empty hf/ exit 1 with the fix', async () => {
    const missing = await run(['trtllm', path.join(root, 'nope'), path.join(root, 'o1')]);
    expect([missing.code, missing.err]).toEqual([1, expect.stringMatching(/^sr3d export: /)]);
    const q = path.join(root, 'quant');
    await quantizeCheckpoint(ckpt, q, { bits: 8 });
    const rq = await run(['trtllm', q, path.join(root, 'o2')]);
    expect(rq.code).toBe(1);
    expect(rq.err).toMatch(/has a quantization_config .*Fix: export the original checkpoint/);
    const busy = path.join(root, 'busy');
    fs.mkdirSync(path.join(busy, 'hf'), { recursive: true });
    fs.writeFileSync(path.join(busy, 'hf', 'x'), '');
    const rb = await run(['trtllm', ckpt, busy]);
    expect([rb.code, rb.err]).toEqual([1, expect.stringMatching(/Expected an empty or new folder for .*hf but it holds files\. Fix: pick another <out>/)]);
  });
});
