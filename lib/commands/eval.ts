/**
 * `sr3d eval <benchmark.jsonl> --model <dir> [--predictions out.jsonl] [--max-new-tokens n]
 * [--device auto|cpu|cuda] [--activations f32|int8|bf16] [--json]` asks the model every question of a benchmark file and
 * scores the answers; `sr3d eval <benchmark.jsonl> --score-only --predictions in.jsonl [--json]`
 * scores an existing predictions file without a model (answers from any runtime, same code).
 * The per-type table (or the JSON report) goes to stdout, progress to stderr.
 * Usage errors: exit 2; benchmark, model or scene errors: exit 1.
 */
import * as fs from 'fs';

import { Sr3dError } from '../errors';
import { evaluate, formatReport, readBenchmark, readPredictions, reportJson } from '../eval';
import type { EvalPrediction } from '../eval';
import { checkMaxNewTokens } from '../validate';
import { activationsFlag, checked, num, parseOrUsage, UsageError, walkArgs } from './types';
import type { Activations } from '../validate';
import type { Command } from './types';

const USAGE = 'eval <benchmark.jsonl> (--model <dir> [--predictions out.jsonl] | --score-only --predictions in.jsonl) [--max-new-tokens n] [--device auto|cpu|cuda] [--activations f32|int8|bf16] [--json]';


interface Args {
  benchmark: string;
  model?: string;
  predictions?: string;
  scoreOnly: boolean;
  json: boolean;
  maxNewTokens?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  activations?: Activations;
}

function parseArgs(args: string[]): Args {
  const out: Partial<Args> = { scoreOnly: false, json: false };
  const positional: string[] = [];
  walkArgs(args, USAGE, (flag, value) => {
    switch (flag) {
      case '--model': out.model = value(); break;
      case '--predictions': out.predictions = value(); break;
      case '--score-only': out.scoreOnly = true; break;
      case '--json': out.json = true; break;
      // The API's rule (lib/validate.ts), as sr3d ask applies it: an integer >= 0.
      case '--max-new-tokens': out.maxNewTokens = checked(checkMaxNewTokens, num(value(), flag, { int: true }, '64'), flag, '64'); break;
      case '--device': {
        const v = value();
        if (v !== 'auto' && v !== 'cpu' && v !== 'cuda') throw new UsageError(`Expected auto, cpu or cuda for --device but received '${v}'.`);
        out.device = v;
        break;
      }
      case '--activations': out.activations = activationsFlag(value()); break;
      default:
        if (flag.startsWith('--')) throw new UsageError(`Unknown option ${flag}. Usage: sr3d ${USAGE}`);
        positional.push(flag);
    }
  });
  if (positional.length !== 1) throw new UsageError(`Expected one benchmark .jsonl file but received ${positional.length}. Usage: sr3d ${USAGE}`);
  out.benchmark = positional[0];
  if (out.scoreOnly && !out.predictions) throw new UsageError('Expected --predictions <file> with --score-only (the answers to score). Usage: sr3d ' + USAGE);
  if (out.scoreOnly && out.model) throw new UsageError('Expected either --score-only or --model, not both. Usage: sr3d ' + USAGE);
  if (!out.scoreOnly) out.model = out.model ?? process.env.SR3D_MODEL;
  if (!out.scoreOnly && !out.model) {
    throw new UsageError('Expected a model: --model <dir> (or SR3D_MODEL), or --score-only --predictions <file> to score answers from elsewhere. Usage: sr3d ' + USAGE);
  }
  return out as Args;
}

async function run(argv: string[]): Promise<number> {
  const args = parseOrUsage('eval', () => parseArgs(argv));
  if (!args) return 2;
  try {
    const items = readBenchmark(args.benchmark);
    let report;
    if (args.scoreOnly) {
      report = await evaluate(items, { predictions: readPredictions(args.predictions!) });
    } else {
      // Loaded lazily: scoring alone needs no native engine.
      const { SR3D } = await import('../sr3d');
      const model = await SR3D.load(args.model!, { device: args.device, activations: args.activations, onNotice: (m) => process.stderr.write(`sr3d: ${m}\n`) });
      const outFd = args.predictions ? fs.openSync(args.predictions, 'w') : null;
      try {
        report = await evaluate(items, {
          model, maxNewTokens: args.maxNewTokens,
          onPrediction: (p: EvalPrediction, i, n) => {
            if (outFd !== null) fs.writeSync(outFd, JSON.stringify(p) + '\n');
            process.stderr.write(`[${i + 1}/${n}] ${p.id}: ${p.prediction.replace(/\s+/g, ' ').slice(0, 100)}\n`);
          },
        });
      } finally {
        if (outFd !== null) fs.closeSync(outFd);
        await model.dispose();
      }
    }
    process.stdout.write(args.json ? JSON.stringify(reportJson(report), null, 2) + '\n' : formatReport(report));
    return 0;
  } catch (e) {
    if (e instanceof Sr3dError) {
      process.stderr.write(`sr3d eval: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}

export const evalCommand: Command = {
  summary: 'ask every question of a benchmark .jsonl and score the answers (quantitative success within 1.25x, accuracy, VSI-Bench MRA); --score-only scores a predictions file',
  usage: USAGE,
  run,
};
