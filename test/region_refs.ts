// Float64 JavaScript references of the region ops (written for obviousness; float32 steps
// emulated with Math.fround where the op defines them in float32) and their test inputs,
// shared by stitch_tiles, mask_pool and box3d_masks tests.
import { devices } from '../lib';
import { rng } from './helpers';

export const hasGpu = devices().length > 0;
export const f32 = Math.fround;

// ---- float64 JavaScript references ---------------------------------------------------

/** torch upsample_bilinear2d (align_corners=False, float32) taps along one axis. */
export function torchTaps(nIn: number, nOut: number, scaleFactor: number) {
  const ratio = f32(1 / scaleFactor);
  const taps: { i0: number; i1: number; l0: number; l1: number }[] = [];
  for (let d = 0; d < nOut; d++) {
    if (nIn === nOut) { taps.push({ i0: d, i1: d, l0: 1, l1: 0 }); continue; }
    let src = f32(f32(ratio * f32(d + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.min(Math.trunc(src), nIn - 1);
    const i1 = i0 + (i0 < nIn - 1 ? 1 : 0);
    const l1 = Math.min(Math.max(f32(src - i0), 0), 1);
    taps.push({ i0, i1, l0: f32(1 - l1), l1 });
  }
  return taps;
}

/** SpatialRGPT's F.interpolate(mask, scale_factor = sqrt(hw / (H W)), mode='bilinear') of one (H,W) mask. */
export function refDownsample(mask: ArrayLike<number>, off: number, H: number, W: number, P: number) {
  const s = Math.sqrt(1 / (P * P));
  const h = Math.floor(H * s), w = Math.floor(W * s);
  const ty = torchTaps(H, h, s), tx = torchTaps(W, w, s);
  const out = new Float64Array(h * w);
  const m = (y: number, x: number) => (mask[off + y * W + x] ? 1 : 0);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const a = ty[y], b = tx[x];
    const t0 = f32(f32(m(a.i0, b.i0) * b.l0) + f32(m(a.i0, b.i1) * b.l1));
    const t1 = f32(f32(m(a.i1, b.i0) * b.l0) + f32(m(a.i1, b.i1) * b.l1));
    out[y * w + x] = f32(f32(t0 * a.l0) + f32(t1 * a.l1));
  }
  return { d: out, h, w };
}

/**
 * Mask pooling over frames (F,h,w,C) with masks (M,F,P h,P w): float64 sums in (f, y, x) order,
 * rounded to float32 once (`area`: sum(n f) / sum(n); `spatialrgpt`: w = f32(d / f32(f32(S) + f32(1e-8)))).
 */
export function refMaskPool(feat: (f: number, y: number, x: number, c: number) => number, F: number, h: number, w: number, C: number,
  masks: Uint8Array, M: number, P: number, mode: 'area' | 'spatialrgpt'): Float32Array {
  const H = P * h, W = P * w;
  const out = new Float32Array(M * C);
  for (let m = 0; m < M; m++) {
    const weights: number[] = [];  // per token, (f, y, x) order
    for (let f = 0; f < F; f++) {
      const off = (m * F + f) * H * W;
      if (mode === 'spatialrgpt') {
        weights.push(...refDownsample(masks, off, H, W, P).d);
      } else {
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
          let n = 0;
          for (let v = y * P; v < (y + 1) * P; v++) for (let u = x * P; u < (x + 1) * P; u++) n += masks[off + v * W + u] ? 1 : 0;
          weights.push(n);
        }
      }
    }
    const total = weights.reduce((a, b) => a + b, 0);
    const denom = f32(f32(total) + f32(1e-8));
    const acc = new Float64Array(C);
    weights.forEach((d, t) => {
      const wt = mode === 'spatialrgpt' ? f32(d / denom) : d;
      if (wt === 0) return;
      const f = Math.floor(t / (h * w)), y = Math.floor((t % (h * w)) / w), x = t % w;
      for (let c = 0; c < C; c++) acc[c] += wt * feat(f, y, x, c);
    });
    for (let c = 0; c < C; c++) out[m * C + c] = f32(mode === 'spatialrgpt' ? acc[c] : acc[c] / total);
  }
  return out;
}

/** The stitched grid of tiles (N,g,g,C) laid out as (cols, rows). */
export function refStitch(tiles: Float32Array, g: number, C: number, cols: number, rows: number): Float32Array {
  const out = new Float32Array(rows * g * cols * g * C);
  for (let y = 0; y < rows * g; y++) for (let x = 0; x < cols * g; x++) for (let c = 0; c < C; c++) {
    const tile = Math.floor(y / g) * cols + Math.floor(x / g);
    out[(y * cols * g + x) * C + c] = tiles[((tile * g + (y % g)) * g + (x % g)) * C + c];
  }
  return out;
}

export function randomFeatures(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/** M masks of F frames (H,W): a few rectangles, blobs and stray pixels per region; some frames left empty. */
export function randomMasks(M: number, F: number, H: number, W: number, seed: number, emptyFrames = true): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(M * F * H * W);
  for (let m = 0; m < M; m++) for (let f = 0; f < F; f++) {
    if (emptyFrames && F > 1 && r() < 0.3) continue;
    const off = (m * F + f) * H * W;
    const shapes = 1 + Math.floor(r() * 3);
    for (let s = 0; s < shapes; s++) {
      const y0 = Math.floor(r() * H), x0 = Math.floor(r() * W);
      const y1 = Math.min(H, y0 + 1 + Math.floor(r() * H * 0.6)), x1 = Math.min(W, x0 + 1 + Math.floor(r() * W * 0.6));
      const round = r() < 0.5;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
        const inside = !round || ((y - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 + ((x - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 <= 1;
        if (inside) out[off + y * W + x] = 1;
      }
    }
    for (let k = 0; k < 5; k++) out[off + Math.floor(r() * H * W)] = 1;
  }
  // Every region non-empty somewhere.
  for (let m = 0; m < M; m++) if (!out.subarray(m * F * H * W, (m + 1) * F * H * W).some((v) => v)) out[m * F * H * W + Math.floor(r() * H * W)] = 1;
  return out;
}

// ---- stitchTiles -----------------------------------------------------------------------

export function refInside(points: Float32Array, center: number[], R: number[], half: number[]): Uint8Array {
  const c = center.map(f32), r = R.map(f32), h = half.map(f32);
  const out = new Uint8Array(points.length / 3);
  for (let i = 0; i < out.length; i++) {
    const dx = f32(points[3 * i] - c[0]), dy = f32(points[3 * i + 1] - c[1]), dz = f32(points[3 * i + 2] - c[2]);
    const l = [0, 1, 2].map((a) => f32(f32(f32(r[a] * dx) + f32(r[3 + a] * dy)) + f32(r[6 + a] * dz)));
    out[i] = l.every((v, a) => v >= -h[a] && v <= h[a]) ? 1 : 0;
  }
  return out;
}

export function rotation(axis: number[], angle: number): number[] {
  const n = Math.hypot(...axis);
  const [x, y, z] = axis.map((v) => v / n);
  const c = Math.cos(angle), s = Math.sin(angle), t = 1 - c;
  return [t * x * x + c, t * x * y - s * z, t * x * z + s * y, t * x * y + s * z, t * y * y + c, t * y * z - s * x,
    t * x * z - s * y, t * y * z + s * x, t * z * z + c];
}

/** Camera-to-world pose looking from `eye` at `target` (OpenCV axes: z forward, y down, world z up). */
export function lookAt(eye: number[], target: number[]): number[] {
  const sub = (a: number[], b: number[]) => a.map((v, i) => v - b[i]);
  const norm = (a: number[]) => a.map((v) => v / Math.hypot(...a));
  const crossP = (a: number[], b: number[]) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const z = norm(sub(target, eye));
  const x = norm(crossP(z, [0, 0, 1]));
  const y = crossP(z, x);
  return [x[0], y[0], z[0], eye[0], x[1], y[1], z[1], eye[1], x[2], y[2], z[2], eye[2], 0, 0, 0, 1];
}

/**
 * float64 projected-hull reference written independently of the kernel (gift wrapping, signed
 * distances): 1 / 0 where the pixel centre is more than 1e-6 px inside / outside, -1 on the
 * boundary (either answer is right there).
 */
export function refProject(box: { center: number[]; R: number[]; half: number[] }, K: { fx: number; fy: number; cx: number; cy: number },
  pose: number[], W: number, H: number, near: number): Int8Array {
  const A = [pose[0], pose[1], pose[2], pose[4], pose[5], pose[6], pose[8], pose[9], pose[10]];
  const t = [pose[3], pose[7], pose[11]];
  const toCam = (p: number[]) => { // R^T (p - t) for a rigid pose
    const d = p.map((v, i) => v - t[i]);
    return [0, 1, 2].map((c) => A[c] * d[0] + A[3 + c] * d[1] + A[6 + c] * d[2]);
  };
  const corners = Array.from({ length: 8 }, (_, i) => {
    const l = [i & 1 ? 1 : -1, i & 2 ? 1 : -1, i & 4 ? 1 : -1].map((s, a) => s * box.half[a]);
    return toCam([0, 1, 2].map((r) => box.center[r] + box.R[3 * r] * l[0] + box.R[3 * r + 1] * l[1] + box.R[3 * r + 2] * l[2]));
  });
  const pts: number[][] = corners.filter((p) => p[2] >= near);
  for (let i = 0; i < 8; i++) for (const bit of [1, 2, 4]) {
    if (i & bit) continue;
    const p = corners[i], q = corners[i | bit];
    if ((p[2] >= near) === (q[2] >= near)) continue;
    const s = (near - p[2]) / (q[2] - p[2]);
    pts.push([p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1]), near]);
  }
  const uv = pts.map((p) => [K.fx * p[0] / p[2] + K.cx, K.fy * p[1] / p[2] + K.cy]);
  const out = new Int8Array(W * H);
  if (uv.length < 3) return out;
  // Gift wrapping (counter-clockwise in (u, v) algebra).
  const start = uv.reduce((a, b) => (b[0] < a[0] || (b[0] === a[0] && b[1] < a[1]) ? b : a));
  const hull: number[][] = [];
  let p = start;
  do {
    hull.push(p);
    let q = uv[0] === p ? uv[1] : uv[0];
    for (const r of uv) {
      const cr = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]);
      if (cr < 0 || (cr === 0 && Math.hypot(r[0] - p[0], r[1] - p[1]) > Math.hypot(q[0] - p[0], q[1] - p[1]))) q = r;
    }
    p = q;
  } while (p !== start && hull.length <= uv.length);
  if (hull.length < 3) return out;
  for (let v = 0; v < H; v++) for (let u = 0; u < W; u++) {
    let minDist = Infinity;
    for (let k = 0; k < hull.length; k++) {
      const a = hull[k], b = hull[(k + 1) % hull.length];
      const len = Math.hypot(b[0] - a[0], b[1] - a[1]);
      if (len === 0) continue;
      minDist = Math.min(minDist, ((b[0] - a[0]) * (v - a[1]) - (b[1] - a[1]) * (u - a[0])) / len);
    }
    out[v * W + u] = minDist > 1e-6 ? 1 : minDist < -1e-6 ? 0 : -1;
  }
  return out;
}

