// Overlays: the PNG decodes at the expected size, outlines carry the region colours, labels
// are drawn, pixels away from masks are the frame's own, frame selection and downscaling.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';

import { InvalidArgumentError, sceneFromFrames } from '../lib';
import { REGION_COLORS, renderOverlay, TILE_GAP, writeOverlay } from '../lib/overlay';
import { rng } from './helpers';

const W = 80, H = 60;

function scene(frames: number) {
  const r = rng(frames);
  return sceneFromFrames(Array.from({ length: frames }, () => ({
    image: { data: Uint8Array.from({ length: W * H * 3 }, () => Math.floor(r() * 256)), shape: [H, W, 3] },
    depth: { data: new Float32Array(W * H).fill(1), shape: [H, W] },
    intrinsics: { fx: 50, fy: 50, cx: 40, cy: 30 },
  })));
}

/** Per-frame masks with one rectangle (columns x0..x1-1, rows y0..y1-1) on `frame`. */
function rectMasks(frames: number, frame: number, x0: number, y0: number, x1: number, y1: number) {
  return Array.from({ length: frames }, (_, f) => {
    const m = new Uint8Array(W * H);
    if (f === frame) for (let y = y0; y < y1; y++) m.fill(1, y * W + x0, y * W + x1);
    return { data: m, shape: [H, W] } as never;
  });
}

function px(png: { data: Uint8Array; width: number }, x: number, y: number): number[] {
  const o = 4 * (y * png.width + x);
  return [png.data[o], png.data[o + 1], png.data[o + 2]];
}

describe('writeOverlay', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-overlay-'));

  it('two frames side by side: outlines in the region colours, labels above, the rest untouched', async () => {
    const s = scene(2);
    const regions = [{ masks: rectMasks(2, 0, 20, 20, 50, 40) }, { masks: rectMasks(2, 1, 5, 30, 30, 50) }];
    const file = path.join(dir, 'two.png');
    const layout = await writeOverlay(file, s, regions);
    const png = PNG.sync.read(fs.readFileSync(file));
    expect([png.width, png.height]).toEqual([2 * W + TILE_GAP, H]);
    expect(layout).toMatchObject({ width: 2 * W + TILE_GAP, height: H, scale: 1 });
    expect(layout.tiles.map((t) => [t.frame, t.x, t.y])).toEqual([[0, 0, 0], [1, W + TILE_GAP, 0]]);
    const img = (f: number, x: number, y: number) => Array.from(s.frames[f].image.data.slice(3 * (y * W + x), 3 * (y * W + x) + 3));
    // Region 0 outline on frame 0: the mask's border pixels.
    for (const [x, y] of [[20, 30], [49, 30], [35, 39], [20, 39]]) expect(px(png, x, y)).toEqual([...REGION_COLORS[0]]);
    // Inside the mask, 2 px from its border, and far from it: the frame's own pixels.
    for (const [x, y] of [[35, 30], [22, 25], [70, 55], [5, 5], [60, 45]]) expect(px(png, x, y)).toEqual(img(0, x, y));
    // Just outside the mask (not under the label): untouched.
    expect(px(png, 19, 30)).toEqual(img(0, 19, 30));
    expect(px(png, 50, 30)).toEqual(img(0, 50, 30));
    // Region 1 outline on frame 1 (shifted by the tile offset).
    const x1 = W + TILE_GAP;
    expect(px(png, x1 + 5, 40)).toEqual([...REGION_COLORS[1]]);
    expect(px(png, x1 + 29, 49)).toEqual([...REGION_COLORS[1]]);
    expect(px(png, x1 + 15, 40)).toEqual(img(1, 15, 40));
    // Label "region0" (9 px tall at scale 1) on a black box just above the mask, at its left edge:
    // the box corner is black and the first glyph 'r' has its stem at row 2, column 0 of the glyph.
    expect(px(png, 20, 11)).toEqual([0, 0, 0]);
    expect(px(png, 21, 14)).toEqual([...REGION_COLORS[0]]);
    expect(px(png, 22, 14)).toEqual([0, 0, 0]);
    // The gap between tiles is the background.
    expect(px(png, W + 1, 30)).toEqual([32, 32, 32]);
  });

  it('more than 4 frames: only the frames that carry a mask, in a grid', () => {
    const s = scene(6);
    const regions = [{ masks: rectMasks(6, 1, 10, 10, 30, 30) }, { masks: rectMasks(6, 4, 10, 10, 30, 30) }];
    const o = renderOverlay(s, regions);
    expect(o.tiles.map((t) => t.frame)).toEqual([1, 4]);
    const all = renderOverlay(s, regions, { frames: [0, 1, 2, 3, 4] }); // 5 frames: 3 columns, 2 rows
    expect([all.width, all.height]).toEqual([3 * W + 2 * TILE_GAP, 2 * H + TILE_GAP]);
    expect(all.tiles[4]).toMatchObject({ frame: 4, x: W + TILE_GAP, y: H + TILE_GAP });
  });

  it('a mosaic larger than maxSize is scaled down, outlines still drawn', () => {
    const s = scene(2);
    const o = renderOverlay(s, [{ masks: rectMasks(2, 0, 20, 20, 60, 50) }], { maxSize: 64 });
    const scale = 64 / (2 * W + TILE_GAP), tw = Math.floor(W * scale), th = Math.floor(H * scale);
    expect(o.scale).toBeCloseTo(scale, 12);
    expect([o.width, o.height]).toEqual([2 * tw + TILE_GAP, th]);
    expect(o.rgb.length).toBe(3 * o.width * o.height);
    let colored = 0;
    for (let i = 0; i < o.width * o.height; i++) {
      if (o.rgb[3 * i] === REGION_COLORS[0][0] && o.rgb[3 * i + 1] === REGION_COLORS[0][1] && o.rgb[3 * i + 2] === REGION_COLORS[0][2]) colored++;
    }
    expect(colored).toBeGreaterThan(20);
  });

  it('rejects masks of the wrong size or count, bad frames, and an unwritable path', async () => {
    const s = scene(2);
    expect(() => renderOverlay(s, [{ masks: rectMasks(1, 0, 1, 1, 2, 2) }])).toThrow(/Expected one mask per frame \(2\) for regions\[0\]\.masks/);
    const bad = [{ masks: [{ data: new Uint8Array(10), shape: [2, 5] }, { data: new Uint8Array(W * H), shape: [H, W] }] as never[] }];
    expect(() => renderOverlay(s, bad)).toThrow(/Expected a 80x60 mask \(frame 0's size\) for regions\[0\]\.masks\[0\]/);
    expect(() => renderOverlay(s, [], { frames: [2] })).toThrow(InvalidArgumentError);
    await expect(writeOverlay('/nonexistent-dir/x.png', s, [])).rejects.toThrow(/writable file path/);
  });
});
