/**
 * `sr3d measure <scene> --region … [--region …] [--json] [--overlay out.png] [--voxel m]
 * [--margin m] [--up x,y,z | --no-up]`: exact metric geometry of regions from the scene's
 * RGB-D data (no model). Text table by default, the JSON of {@link measure} with `--json`.
 * Usage errors: one line on stderr, exit code 2; scene and region errors: one line, exit 1.
 */
import { finite } from '../camera';
import { InvalidArgumentError } from '../errors';
import { gatherRegionPoints, measurePoints } from '../measure';
import type { MeasureResult } from '../measure';
import { writeOverlay } from '../overlay';
import { parseRegionArg, resolveRegions } from '../regions';
import type { RegionSpec } from '../regions';
import { loadScene, sceneWorldPoints } from '../scene';
import { parseOrUsage, UsageError, walkArgs } from './types';
import type { Command } from './types';

const USAGE = 'measure <scene.json | dir> --region SPEC [--region SPEC …] [--json] [--overlay out.png] [--voxel m] [--margin m] [--up x,y,z | --no-up]';
const REGION_HELP = 'SPEC: box3d=cx,cy,cz,sx,sy,sz[,yaw] (world metres, full sizes) | frame=N,box=x0,y0,x1,y1 | frame=N,mask=path.png';


/** Frames `sr3d measure` accepts (the model's 32-frame limit does not apply to geometry). */
const MEASURE_MAX_FRAMES = 100000;

function positive(v: string | undefined, flag: string, example: string): number {
  const x = v === undefined || v.trim() === '' ? NaN : Number(v);
  if (!finite(x) || !(x > 0)) throw new UsageError(`Expected a positive number of metres for ${flag} but received ${v === undefined ? 'nothing' : `'${v}'`}. Fix: e.g. ${flag} ${example}`);
  return x;
}

function nonNegative(v: string | undefined, flag: string, example: string): number {
  const x = v === undefined || v.trim() === '' ? NaN : Number(v);
  if (!finite(x) || x < 0) throw new UsageError(`Expected a non-negative number of metres for ${flag} but received ${v === undefined ? 'nothing' : `'${v}'`}. Fix: e.g. ${flag} ${example}`);
  return x;
}

interface Args {
  scene: string;
  regions: RegionSpec[];
  json: boolean;
  overlay?: string;
  voxel?: number;
  margin?: number;
  up?: number[] | null;
}

function parseArgs(args: string[]): Args {
  let scene: string | undefined;
  const regions: RegionSpec[] = [];
  const out: Partial<Args> = { json: false };
  walkArgs(args, USAGE, (flag, value) => {
    switch (flag) {
      case '--region': {
        const v = value();
        try {
          regions.push(parseRegionArg(v));
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        break;
      }
      case '--json': out.json = true; break;
      case '--overlay': out.overlay = value(); break;
      case '--voxel': out.voxel = positive(value(), '--voxel', '0.01'); break;
      case '--margin': out.margin = nonNegative(value(), '--margin', '0.02'); break;
      case '--no-up': out.up = null; break;
      case '--up': {
        const v = value();
        const u = v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
        if (u.length !== 3 || !u.every(finite) || u.every((x) => x === 0)) {
          throw new UsageError(`Expected 3 comma-separated numbers, not all 0, for --up but received '${v}'. Fix: e.g. --up 0,0,1`);
        }
        out.up = u;
        break;
      }
      default:
        if (flag.startsWith('-') || scene !== undefined) {
          throw new UsageError(`Expected an option of sr3d ${USAGE} but received '${flag}'. Fix: see sr3d help`);
        }
        scene = flag;
    }
  });
  if (scene === undefined) throw new UsageError(`Expected a scene (scene.json or its folder) for <scene> but received nothing. Fix: sr3d ${USAGE}`);
  if (regions.length === 0) throw new UsageError(`Expected at least one --region but received none. Fix: ${REGION_HELP}`);
  return { ...out, scene, regions } as Args;
}

const m3 = (x: number) => x.toFixed(3);

/** The text table of a measurement (metres). */
export function formatMeasurement(r: MeasureResult, up: readonly number[] | null): string {
  const head = ['region', 'points', 'height', 'length', 'width', 'centroid (x, y, z)', 'frames'];
  const rows = r.regions.map((g) => [g.id, String(g.points), m3(g.height), m3(g.length), m3(g.width),
    g.centroid.map(m3).join(', '), `${g.coverage.filter((c) => c > 0).length}/${g.coverage.length}`]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (row: string[]) => row.map((s, c) => (c === 0 || c === 5 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ').trimEnd();
  const out = [line(head), ...rows.map(line)];
  if (r.pairs.length) {
    out.push('');
    const ph = ['pair', 'centroid distance', 'gap'];
    const prows = r.pairs.map((p) => [`${p.a} - ${p.b}`, m3(p.centroidDistance), m3(p.gap)]);
    const pw = ph.map((h, c) => Math.max(h.length, ...prows.map((row) => row[c].length)));
    const pl = (row: string[]) => row.map((s, c) => (c === 0 ? s.padEnd(pw[c]) : s.padStart(pw[c]))).join('  ').trimEnd();
    out.push(pl(ph), ...prows.map(pl));
  }
  out.push('', r.axes === 'principal-axes'
    ? 'metres; no up direction: length >= width >= height along each region\'s principal axes (give --up x,y,z for gravity-aligned sizes)'
    : `metres; height along up [${(up ?? []).map((x) => +x.toFixed(4)).join(', ')}], length x width = minimum-area footprint rectangle; frames = frames that see the region`);
  return out.join('\n') + '\n';
}

async function run(args: string[]): Promise<number> {
  const a = parseOrUsage('measure', () => parseArgs(args));
  if (!a) return 2;
  try {
    // No model here, so no 32-frame limit: measure uses every frame of the scene.
    const scene = await loadScene(a.scene, { maxFrames: MEASURE_MAX_FRAMES });
    const world = await sceneWorldPoints(scene);
    const resolved = await resolveRegions(scene, a.regions, { worldPoints: world, margin: a.margin });
    const up = a.up === undefined ? scene.up ?? null : a.up;
    const result = measurePoints(gatherRegionPoints(world, resolved), { voxel: a.voxel, up });
    if (a.overlay) await writeOverlay(a.overlay, scene, resolved);
    process.stdout.write(a.json ? JSON.stringify(result) + '\n' : formatMeasurement(result, up && up.map((x) => x / Math.hypot(up[0], up[1], up[2]))));
    return 0;
  } catch (e) {
    if (e instanceof InvalidArgumentError) {
      process.stderr.write(`sr3d measure: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 1;
    }
    throw e;
  }
}

/** The `sr3d measure` command. */
export const measureCommand: Command = {
  summary: 'metric size, position and gaps of regions from the scene\'s depth (no model): height, length, width, centroid',
  usage: USAGE,
  run,
};
