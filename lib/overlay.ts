/**
 * Overlays (issue 5, `--overlay out.png` of `sr3d ask` and `sr3d measure`): the frames of a
 * scene in a grid, each region's mask outlined in its own colour and labelled `region<i>`,
 * so a user can see what was measured or asked about.
 */
import { promises as fsp } from 'fs';
import { PNG } from 'pngjs';

import { describeValue, invalidArgument } from './errors';
import type { Scene } from './scene';
import type { NdArray } from './tensor';

/** Per-frame masks of one region (a `ResolvedRegion` of `resolveRegions` fits). */
export interface OverlayRegion {
  /** The label. Defaults to `region<i>`. */
  id?: string;
  /** One (H,W) uint8 mask per scene frame, nonzero = inside. */
  masks: readonly NdArray<Uint8Array>[];
}

export interface OverlayOptions {
  /**
   * 0-based indices of the frames to show, in order. Defaults to all frames when the scene
   * has at most 4, otherwise the frames where any region has a mask pixel.
   */
  frames?: readonly number[];
  /**
   * Largest width and height of the mosaic, pixels: a larger grid is scaled down (box
   * filter; masks sampled at the centre of each output pixel). Defaults to `2048`.
   */
  maxSize?: number;
}

/** Where each frame went in the mosaic. */
export interface OverlayLayout {
  /** Mosaic size, pixels. */
  width: number;
  height: number;
  /** Output pixels per input pixel (≤ 1). */
  scale: number;
  /** One entry per frame shown: its index and its tile's top-left corner in the mosaic. */
  tiles: { frame: number; x: number; y: number; width: number; height: number }[];
}

/**
 * Colour of region i: Sasha Trubetskoy's 20 distinct colours (first 10), chosen to stay
 * distinguishable on photos and for most colour-blind viewers.
 */
export const REGION_COLORS: readonly (readonly [number, number, number])[] = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
];

/** Pixels between tiles (filled with {@link BACKGROUND}). */
export const TILE_GAP = 4;
const BACKGROUND = [32, 32, 32];

// A 5x7 bitmap font with the characters of region labels ("region0"…, frame names of digits).
const GLYPHS: Record<string, string[]> = {
  '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
  '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  '3': ['#####', '...#.', '..#..', '...#.', '....#', '#...#', '.###.'],
  '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  '6': ['..##.', '.#...', '#....', '####.', '#...#', '#...#', '.###.'],
  '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  '9': ['.###.', '#...#', '#...#', '.####', '....#', '...#.', '.##..'],
  r: ['.....', '.....', '#.##.', '##..#', '#....', '#....', '#....'],
  e: ['.....', '.....', '.###.', '#...#', '#####', '#....', '.###.'],
  g: ['.....', '.####', '#...#', '#...#', '.####', '....#', '.###.'],
  i: ['..#..', '.....', '.##..', '..#..', '..#..', '..#..', '.###.'],
  o: ['.....', '.....', '.###.', '#...#', '#...#', '#...#', '.###.'],
  n: ['.....', '.....', '#.##.', '##..#', '#...#', '#...#', '#...#'],
};
const GLYPH_W = 5, GLYPH_H = 7;

/** Width and height in pixels of `text` drawn at integer `scale` (1 px between glyphs, 1 px border). */
export function textSize(text: string, scale: number): { width: number; height: number } {
  return { width: (text.length * (GLYPH_W + 1) + 1) * scale, height: (GLYPH_H + 2) * scale };
}

/** Draws `text` on a black box with its top-left corner at (x, y) of an RGBA canvas (clipped). */
function drawText(rgba: Uint8Array, W: number, H: number, x: number, y: number, text: string, color: readonly number[], scale: number): void {
  const { width, height } = textSize(text, scale);
  const put = (px: number, py: number, c: readonly number[]) => {
    if (px < 0 || py < 0 || px >= W || py >= H) return;
    const o = 4 * (py * W + px);
    rgba[o] = c[0]; rgba[o + 1] = c[1]; rgba[o + 2] = c[2]; rgba[o + 3] = 255;
  };
  for (let dy = 0; dy < height; dy++) for (let dx = 0; dx < width; dx++) put(x + dx, y + dy, [0, 0, 0]);
  [...text].forEach((ch, k) => {
    const g = GLYPHS[ch];
    if (!g) return;
    for (let gy = 0; gy < GLYPH_H; gy++) for (let gx = 0; gx < GLYPH_W; gx++) {
      if (g[gy][gx] !== '#') continue;
      for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) {
        put(x + (1 + k * (GLYPH_W + 1) + gx) * scale + sx, y + (1 + gy) * scale + sy, color);
      }
    }
  });
}

function readFrames(scene: Scene, regions: readonly OverlayRegion[], frames: readonly number[] | undefined): number[] {
  const F = scene.frames.length;
  if (frames !== undefined) {
    if (!Array.isArray(frames) || frames.length === 0 || !frames.every((f) => Number.isInteger(f) && f >= 0 && f < F)) {
      throw invalidArgument(`a non-empty array of frame indices in 0..${F - 1}`, 'frames', frames);
    }
    return [...frames];
  }
  const all = Array.from({ length: F }, (_, f) => f);
  if (F <= 4) return all;
  const used = all.filter((f) => regions.some((r) => r.masks[f].data.some((v) => v !== 0)));
  return used.length ? used : all.slice(0, 4);
}

/**
 * Renders the overlay of regions on a scene's frames: a grid (about square) of the frames
 * shown, {@link TILE_GAP} pixels apart, each region's mask outlined (the mask pixels that
 * touch a non-mask pixel, a line about 2 px wide at 480 px tiles) in `REGION_COLORS[i % 10]`,
 * and its label drawn on a black box at the top-left of the mask's bounding box. Pixels away
 * from outlines and labels are the frame's own (box-filtered when the mosaic is scaled down).
 *
 * @returns the RGB pixels (height·width·3) and the layout.
 */
export function renderOverlay(scene: Scene, regions: readonly OverlayRegion[], opts?: OverlayOptions): { rgb: Uint8Array } & OverlayLayout {
  if (!scene || !Array.isArray(scene.frames) || scene.frames.length === 0) throw invalidArgument('a scene with frames', 'scene', scene);
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
  if (!Array.isArray(regions)) throw invalidArgument('an array of regions { id?, masks }', 'regions', regions);
  regions.forEach((r, i) => {
    if (!r || !Array.isArray(r.masks) || r.masks.length !== scene.frames.length) {
      throw invalidArgument(`one mask per frame (${scene.frames.length})`, `regions[${i}].masks`, r?.masks);
    }
    (r.masks as readonly NdArray<Uint8Array>[]).forEach((m, f) => {
      const fr = scene.frames[f];
      if (!m || !m.data || m.data.length !== fr.width * fr.height) {
        throw invalidArgument(`a ${fr.width}x${fr.height} mask (frame ${f}'s size)`, `regions[${i}].masks[${f}]`, describeValue(m?.data), true);
      }
    });
  });
  const maxSize = opts?.maxSize ?? 2048;
  if (!Number.isInteger(maxSize) || maxSize < 16) throw invalidArgument('an integer >= 16 (pixels)', 'maxSize', maxSize);
  const shown = readFrames(scene, regions, opts?.frames);

  const n = shown.length;
  const cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
  const cellW = Math.max(...shown.map((f) => scene.frames[f].width)), cellH = Math.max(...shown.map((f) => scene.frames[f].height));
  const fullW = cols * cellW + (cols - 1) * TILE_GAP, fullH = rows * cellH + (rows - 1) * TILE_GAP;
  const scale = Math.min(1, maxSize / fullW, maxSize / fullH);
  const tw = Math.max(1, Math.floor(cellW * scale)), th = Math.max(1, Math.floor(cellH * scale));
  const W = cols * tw + (cols - 1) * TILE_GAP, H = rows * th + (rows - 1) * TILE_GAP;
  const rgba = new Uint8Array(4 * W * H);
  for (let i = 0; i < W * H; i++) { rgba[4 * i] = BACKGROUND[0]; rgba[4 * i + 1] = BACKGROUND[1]; rgba[4 * i + 2] = BACKGROUND[2]; rgba[4 * i + 3] = 255; }
  const tiles: OverlayLayout['tiles'] = [];
  // Outline radius and text scale grow with the tile so they stay visible on large frames.
  const radius = Math.max(1, Math.round(Math.min(tw, th) / 320));
  const fontScale = Math.max(1, Math.round(Math.min(tw, th) / 240));

  shown.forEach((f, k) => {
    const fr = scene.frames[f];
    const x0 = (k % cols) * (tw + TILE_GAP), y0 = Math.floor(k / cols) * (th + TILE_GAP);
    const w = Math.max(1, Math.floor(fr.width * scale)), h = Math.max(1, Math.floor(fr.height * scale));
    tiles.push({ frame: f, x: x0, y: y0, width: w, height: h });
    const img = fr.image.data;
    // Box filter: output pixel (x, y) averages source columns [x/s, (x+1)/s) and rows alike.
    for (let y = 0; y < h; y++) {
      const sy0 = Math.floor((y * fr.height) / h), sy1 = Math.max(sy0 + 1, Math.floor(((y + 1) * fr.height) / h));
      for (let x = 0; x < w; x++) {
        const sx0 = Math.floor((x * fr.width) / w), sx1 = Math.max(sx0 + 1, Math.floor(((x + 1) * fr.width) / w));
        let r = 0, g = 0, b = 0;
        for (let sy = sy0; sy < sy1; sy++) for (let sx = sx0; sx < sx1; sx++) {
          const o = 3 * (sy * fr.width + sx);
          r += img[o]; g += img[o + 1]; b += img[o + 2];
        }
        const c = (sy1 - sy0) * (sx1 - sx0), o = 4 * ((y0 + y) * W + x0 + x);
        rgba[o] = Math.round(r / c); rgba[o + 1] = Math.round(g / c); rgba[o + 2] = Math.round(b / c);
      }
    }
    regions.forEach((reg, ri) => {
      const src = reg.masks[f].data;
      // The mask at tile resolution: the source pixel under each output pixel's centre.
      const m = new Uint8Array(w * h);
      let minX = Infinity, minY = Infinity;
      for (let y = 0; y < h; y++) {
        const sy = Math.min(fr.height - 1, Math.floor(((y + 0.5) * fr.height) / h));
        for (let x = 0; x < w; x++) {
          const sx = Math.min(fr.width - 1, Math.floor(((x + 0.5) * fr.width) / w));
          if (src[sy * fr.width + sx]) {
            m[y * w + x] = 1;
            if (x < minX) minX = x;
            if (y < minY) minY = y;
          }
        }
      }
      if (minX === Infinity) return;
      const color = REGION_COLORS[ri % REGION_COLORS.length];
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        if (!m[y * w + x]) continue;
        let edge = false;
        for (let dy = -radius; dy <= radius && !edge; dy++) for (let dx = -radius; dx <= radius && !edge; dx++) {
          const xx = x + dx, yy = y + dy;
          edge = xx < 0 || yy < 0 || xx >= w || yy >= h || !m[yy * w + xx];
        }
        if (!edge) continue;
        const o = 4 * ((y0 + y) * W + x0 + x);
        rgba[o] = color[0]; rgba[o + 1] = color[1]; rgba[o + 2] = color[2];
      }
      const label = reg.id ?? `region${ri}`;
      const size = textSize(label, fontScale);
      // Above the mask when there is room, else just inside it; kept inside the tile.
      const lx = Math.max(0, Math.min(minX, w - size.width));
      const ly = minY >= size.height ? minY - size.height : Math.max(0, Math.min(minY, h - size.height));
      drawLabelClipped(rgba, W, x0, y0, w, h, lx, ly, label, color, fontScale);
    });
  });
  const rgb = new Uint8Array(3 * W * H);
  for (let i = 0; i < W * H; i++) { rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]; }
  return { rgb, width: W, height: H, scale, tiles };
}

/** Draws a label in a tile's own pixels (text wider than the tile is cut at its edge). */
function drawLabelClipped(rgba: Uint8Array, W: number, x0: number, y0: number, w: number, h: number,
  lx: number, ly: number, text: string, color: readonly number[], scale: number): void {
  const size = textSize(text, scale);
  const tmp = new Uint8Array(4 * size.width * size.height);
  drawText(tmp, size.width, size.height, 0, 0, text, color, scale);
  for (let y = 0; y < size.height; y++) for (let x = 0; x < size.width; x++) {
    const tx = lx + x, ty = ly + y;
    if (tx >= w || ty >= h) continue;
    const s = 4 * (y * size.width + x), o = 4 * ((y0 + ty) * W + x0 + tx);
    rgba[o] = tmp[s]; rgba[o + 1] = tmp[s + 1]; rgba[o + 2] = tmp[s + 2];
  }
}

/**
 * Writes the overlay of {@link renderOverlay} as an 8-bit RGB PNG.
 *
 * @param path the PNG file to write (overwritten).
 * @param regionMasks per region, one mask per scene frame (e.g. `resolveRegions(scene, specs)`).
 * @returns the layout (mosaic size, scale, where each frame went).
 */
export async function writeOverlay(path: string, scene: Scene, regionMasks: readonly OverlayRegion[], opts?: OverlayOptions): Promise<OverlayLayout> {
  if (typeof path !== 'string' || path === '') throw invalidArgument('a file path for the PNG', 'path', path);
  const { rgb, ...layout } = renderOverlay(scene, regionMasks, opts);
  const png = new PNG({ width: layout.width, height: layout.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  const bytes = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
  try {
    await fsp.writeFile(path, bytes);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw invalidArgument('a writable file path', 'overlay path', `'${path}' (${err.code ?? 'an error'}: ${err.message}). Fix: check that the folder exists and is writable`, true);
  }
  return layout;
}
