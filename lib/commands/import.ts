/**
 * `sr3d import tum <dir> [--out scene.json] [--max-frames n] [--stride k]
 *  [--intrinsics fx,fy,cx,cy] [--up x,y,z]`: writes a scene manifest for a folder in the TUM
 * RGB-D layout with {@link importTum} (lib/tum.ts).
 */
import { finite } from '../camera';
import { InvalidArgumentError } from '../errors';
import { MAX_DT, importTum } from '../tum';
import type { ImportTumOptions } from '../tum';
import type { Command } from './types';

function parseNumbers(v: string | undefined, n: number, flag: string, example: string): number[] {
  const a = (v ?? '').split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
  if (v === undefined || a.length !== n || !a.every(finite)) {
    throw new InvalidArgumentError(`Expected ${n} comma-separated numbers for ${flag} but received ${v === undefined ? 'nothing' : `'${v}'`}. Fix: e.g. ${flag} ${example}`);
  }
  return a;
}

function parseInt1(v: string | undefined, flag: string): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1) {
    throw new InvalidArgumentError(`Expected a positive integer for ${flag} but received ${v === undefined ? 'nothing' : `'${v}'`}. Fix: e.g. ${flag} 16`);
  }
  return Number(v);
}

const USAGE = 'import tum <dir> [--out scene.json] [--max-frames n] [--stride k] [--intrinsics fx,fy,cx,cy] [--up x,y,z]';

async function run(args: string[]): Promise<number> {
  const [kind, ...rest] = args;
  if (kind !== 'tum') {
    process.stderr.write(`sr3d import: unknown format ${kind === undefined ? '(none)' : `'${kind}'`} (supported: tum)\nusage: sr3d ${USAGE}\n`);
    return 2;
  }
  let dir: string | undefined, out: string | undefined;
  const opts: ImportTumOptions = {};
  try {
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i];
      const eq = a.indexOf('=');
      const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
      const value = () => inline ?? rest[++i];
      switch (flag) {
        case '--out': out = value(); if (!out) throw new InvalidArgumentError('Expected a path for --out but received nothing. Fix: --out path/scene.json'); break;
        case '--max-frames': opts.maxFrames = parseInt1(value(), '--max-frames'); break;
        case '--stride': opts.stride = parseInt1(value(), '--stride'); break;
        case '--intrinsics': { const [fx, fy, cx, cy] = parseNumbers(value(), 4, '--intrinsics', '517.3,516.5,318.6,255.3'); opts.intrinsics = { fx, fy, cx, cy }; break; }
        case '--up': opts.up = parseNumbers(value(), 3, '--up', '0,0,1') as [number, number, number]; break;
        default:
          if (a.startsWith('-') || dir !== undefined) throw new InvalidArgumentError(`Expected an option of sr3d ${USAGE} but received '${a}'. Fix: see sr3d help`);
          dir = a;
      }
    }
    if (dir === undefined) throw new InvalidArgumentError(`Expected a TUM folder for <dir> but received nothing. Fix: sr3d ${USAGE}`);
    const r = await importTum(dir, out, opts);
    const d = r.dropped;
    const notes = [
      d.noDepth ? `${d.noDepth} without a depth frame within ${MAX_DT} s` : '',
      d.outsideGroundtruth ? `${d.outsideGroundtruth} outside the ground-truth time range` : '',
      d.sampled ? `${d.sampled} left out to keep ${r.manifest.frames.length} (--max-frames/--stride)` : '',
    ].filter(Boolean);
    process.stdout.write(`wrote ${r.path}: ${r.manifest.frames.length} frames, intrinsics ${r.intrinsicsSource}` +
      `${r.manifest.up ? `, up [${r.manifest.up.join(', ')}]` : ', up unknown (pass --up x,y,z if the world frame is gravity-aligned)'}\n` +
      (notes.length ? `dropped rgb frames: ${notes.join('; ')}\n` : ''));
    return 0;
  } catch (e) {
    if (e instanceof InvalidArgumentError) {
      process.stderr.write(`sr3d import: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** The `sr3d import` command. */
export const importCommand: Command = {
  summary: 'write a scene.json for a TUM RGB-D folder (associated rgb/depth, interpolated ground-truth poses)',
  usage: USAGE,
  run,
};
