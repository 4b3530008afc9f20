/**
 * `sr3d ask <scene.json | dir | image> --model <dir> [--region SPEC …] [--json] [--overlay out.png]
 * [--max-new-tokens n] [--temperature t] [--top-p p] [--top-k k] [--seed s] [--max-frames n]
 * [--device auto|cpu|cuda] [--activations f32|int8|bf16] "question"`: the model's answer, streamed to stdout.
 * Progress (stages, tiles, tokens/s) goes to stderr when stderr is a terminal, never with --json.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';

import { checkWarning } from '../check';
import { Sr3dError } from '../errors';
import { writeOverlay } from '../overlay';
import { parseRegionArg } from '../regions';
import type { RegionSpec } from '../regions';
import { readImage } from '../image';
import type { Scene } from '../scene';
import type { AskInput } from '../model_types';
import { SR3D } from '../sr3d';
import { checkMaxNewTokens, checkTemperature } from '../validate';
import { MODEL_HELP, isCheckpointDir } from './model_help';
import { activationsFlag, checked, num, parseOrUsage, UsageError, walkArgs } from './types';
import type { Activations } from '../validate';
import type { Command } from './types';

const USAGE = 'ask <scene.json | scene dir | image> --model <dir> [--region SPEC …] [--json] [--overlay out.png] [--max-new-tokens n] ' +
  '[--temperature t] [--top-p p] [--top-k k] [--seed s] [--max-frames n] [--device auto|cpu|cuda] [--activations f32|int8|bf16] "question"';


interface Args {
  input: string;
  question: string;
  model?: string;
  regions: RegionSpec[];
  json: boolean;
  overlay?: string;
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  maxFrames?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  activations?: Activations;
}

function parseArgs(args: string[], chat = false): Args {
  const pos: string[] = [];
  const out: Partial<Args> & { regions: RegionSpec[]; json: boolean } = { regions: [], json: false };
  walkArgs(args, USAGE, (flag, value) => {
    switch (flag) {
      case '--model': out.model = value(); break;
      case '--region':
        try {
          out.regions.push(parseRegionArg(value()));
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        break;
      case '--json': out.json = true; break;
      case '--overlay': out.overlay = value(); break;
      case '--max-new-tokens': out.maxNewTokens = checked(checkMaxNewTokens, num(value(), flag, { int: true }, '64'), flag, '64'); break;
      case '--temperature': out.temperature = checked(checkTemperature, num(value(), flag, {}, '0.7'), flag, '0.7'); break;
      case '--top-p': out.topP = num(value(), flag, { min: Number.MIN_VALUE, max: 1 }, '0.8'); break;
      case '--top-k': out.topK = num(value(), flag, { int: true, min: 0 }, '20'); break;
      case '--seed': out.seed = num(value(), flag, { int: true, min: 0 }, '1'); break;
      case '--max-frames': out.maxFrames = num(value(), flag, { int: true, min: 1, max: 32 }, '16'); break;
      case '--device': {
        const d = value();
        if (d !== 'auto' && d !== 'cpu' && d !== 'cuda') throw new UsageError(`Expected auto, cpu or cuda for --device but received '${d}'. Fix: e.g. --device cpu`);
        out.device = d;
        break;
      }
      case '--activations': out.activations = activationsFlag(value()); break;
      default:
        // Anything not starting with -- is the scene or the question (a question may hold '=' or start with '-').
        if (!flag.startsWith('--')) pos.push(flag);
        else throw new UsageError(`Unknown option ${flag}. Usage: sr3d ${USAGE}`);
    }
  });
  if (chat ? pos.length !== 1 : pos.length !== 2) {
    throw new UsageError(chat
      ? `Expected a scene (or image) but received ${pos.length} positional arguments; the questions come on stdin, one per line. ` +
        'Fix: sr3d chat examples/data/tum_fr3_cabinet --model ./tiny-sr3d --region box3d=…'
      : `Expected a scene (or image) and a question but received ${pos.length} positional argument${pos.length === 1 ? '' : 's'}. ` +
        `Fix: sr3d ask examples/data/tum_fr3_cabinet --model ./tiny-sr3d --region box3d=… "How tall is <region0>?"`);
  }
  return { ...out, input: pos[0], question: chat ? '' : pos[1] } as Args;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** A one-frame scene holding just an image, for the overlay of an image asked about without depth. */
async function imageScene(file: string): Promise<Scene> {
  const image = await readImage(file);
  const [height, width] = image.shape;
  return { frames: [{ name: path.basename(file), image, intrinsics: { fx: 1, fy: 1, cx: 0, cy: 0 }, width, height }] };
}

async function run(argv: string[]): Promise<number> {
  const args = parseOrUsage('ask', () => parseArgs(argv));
  if (!args) return 2;
  const modelDir = args.model ?? process.env.SR3D_MODEL;
  if (!modelDir) {
    process.stderr.write(`sr3d ask: ${MODEL_HELP}\n`);
    return 2;
  }
  if (!isCheckpointDir(modelDir)) {
    process.stderr.write(`sr3d ask: ${modelDir} is not a model folder (it has no config.json).\n${MODEL_HELP.split('\n').slice(1).join('\n')}\n`);
    return 2;
  }
  const progress = !args.json && process.stderr.isTTY === true;
  const say = (s: string) => { if (progress) process.stderr.write(`\x1b[2m${s}\x1b[0m\n`); };
  let model: SR3D | null = null;
  try {
    say(`loading ${modelDir} …`);
    model = await SR3D.load(modelDir, { device: args.device, activations: args.activations, onNotice: (m) => { if (!args.json) process.stderr.write(`sr3d: ${m}\n`); } });
    say(`engine: ${model.engine.info().device}`);
    const input: AskInput = IMAGE_EXT.test(args.input) && fs.existsSync(args.input) && fs.statSync(args.input).isFile()
      ? { image: path.resolve(args.input), question: args.question, regions: args.regions }
      : { scene: args.input, question: args.question, regions: args.regions, maxFrames: args.maxFrames };
    const streamed = !args.json;
    let n = 0;
    const r = await model.ask({
      ...input, maxNewTokens: args.maxNewTokens, temperature: args.temperature, topP: args.topP, topK: args.topK, seed: args.seed,
      onProgress: (_stage, message) => say(message),
      onToken: (text) => {
        n++;
        if (streamed) process.stdout.write(text);
      },
    });
    if (streamed) process.stdout.write('\n');
    const t = r.timings;
    say(`${r.details.mode === 'tiles' ? `${r.details.images} tiles (${r.details.plan.cols}x${r.details.plan.rows}${r.details.plan.thumbnail ? ' + thumbnail' : ''})` : `${r.details.images} frames`}, ` +
      `${r.details.promptLength} prompt positions, 3D PE ${r.details.spatialPe ? 'on' : 'off'}`);
    say(`geometry ${t.geometry.toFixed(0)} ms, tiling ${t.tiling.toFixed(0)} ms, vision ${t.vision.toFixed(0)} ms, projector+PE ${t.projector.toFixed(0)} ms, ` +
      `regions ${t.regions.toFixed(0)} ms, prefill ${t.prefill.toFixed(0)} ms, decode ${t.decode.toFixed(0)} ms (${n > 1 && t.decode > 0 ? ((r.tokens.length - 1) / (t.decode / 1000)).toFixed(1) : '-'} tokens/s)`);
    for (const note of r.details.notes) if (!args.json) process.stderr.write(`sr3d: ${note}\n`);
    const warning = r.details.check ? checkWarning(r.details.check) : null;
    if (warning && !args.json) process.stderr.write(`sr3d: warning: ${warning}\n`);
    if (args.overlay) {
      // The frames fed to the model (those a region is on, when there are regions), each region outlined.
      const scene: Scene = r.scene ?? await imageScene(input.image as string);
      const fed = r.details.frames;
      const onRegion = fed.filter((f) => r.regions.some((g) => g.pixels[f] > 0));
      await writeOverlay(args.overlay, scene, r.regions, { frames: onRegion.length > 0 ? onRegion : fed });
      say(`overlay: ${args.overlay}`);
    }
    if (args.json) process.stdout.write(JSON.stringify({ text: r.text, tokens: r.tokens, timings: r.timings }) + '\n');
    return 0;
  } catch (e) {
    if (e instanceof Sr3dError) {
      process.stderr.write(`sr3d ask: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    if (model) await model.dispose();
  }
}

const CHAT_USAGE = 'chat <scene.json | scene dir | image> --model <dir> [--region SPEC …] [--json] [--max-new-tokens n] ' +
  '[--temperature t] [--top-p p] [--top-k k] [--seed s] [--max-frames n] [--device auto|cpu|cuda] [--activations f32|int8|bf16]  (questions on stdin, one per line)';

/**
 * `sr3d chat`: a conversation about one scene. Questions come on stdin, one per line (a `> `
 * prompt when stdin is a terminal); each answer streams to stdout (or is one JSON line
 * `{ text, tokens, timings }` with --json). Follow-ups continue the model's KV cache.
 */
async function runChat(argv: string[]): Promise<number> {
  const args = parseOrUsage('chat', () => parseArgs(argv, true));
  if (!args) return 2;
  const modelDir = args.model ?? process.env.SR3D_MODEL;
  if (!modelDir || !isCheckpointDir(modelDir)) {
    process.stderr.write(`sr3d chat: ${modelDir ? `${modelDir} is not a model folder (it has no config.json).\n` : ''}${MODEL_HELP}\n`);
    return 2;
  }
  const tty = process.stdin.isTTY === true;
  let model: SR3D | null = null;
  try {
    model = await SR3D.load(modelDir, { device: args.device, activations: args.activations, onNotice: (m) => { if (!args.json) process.stderr.write(`sr3d: ${m}\n`); } });
    const input = IMAGE_EXT.test(args.input) && fs.existsSync(args.input) && fs.statSync(args.input).isFile()
      ? { image: path.resolve(args.input), regions: args.regions }
      : { scene: args.input, regions: args.regions, maxFrames: args.maxFrames };
    const chat = model.chat(input);
    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    if (tty) process.stdout.write('> ');
    for await (const line of rl) {
      const q = line.trim();
      if (q === '') {
        if (tty) process.stdout.write('> ');
        continue;
      }
      const r = await chat.ask(q, {
        maxNewTokens: args.maxNewTokens, temperature: args.temperature, topP: args.topP, topK: args.topK, seed: args.seed,
        onToken: (text) => { if (!args.json) process.stdout.write(text); },
      });
      if (args.json) process.stdout.write(JSON.stringify({ text: r.text, tokens: r.tokens, timings: r.timings }) + '\n');
      else process.stdout.write('\n');
      if (tty) process.stdout.write('> ');
    }
    return 0;
  } catch (e) {
    if (e instanceof Sr3dError) {
      process.stderr.write(`sr3d chat: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    if (model) await model.dispose();
  }
}

export const chatCommand: Command = {
  summary: 'a conversation about a scene: questions on stdin, one per line; follow-ups continue the model\'s context',
  usage: CHAT_USAGE,
  run: runChat,
};

export const askCommand: Command = {
  summary: "the model's answer about a scene and its regions (streamed); --json prints { text, tokens, timings }",
  usage: USAGE,
  run,
};
