/**
 * Exact metric geometry of regions from RGB-D data (issue 5, "measure"): no model involved.
 *
 * For each region: the world points under its masks in every frame, duplicates across frames
 * merged on a voxel grid, then in metres its height (along `up`), the length and width of the
 * minimum-area rectangle of its horizontal footprint, its centroid and point count; for each
 * pair of regions the centroid distance and the gap (closest distance between the point sets).
 *
 * Robustness (this project's choice, documented here and in the README): depth noise and
 * mixed pixels at object edges put a few stray points far from the surface, so every extent
 * is a quantile range `Q(1-q) - Q(q)` (numpy 'linear' quantiles, `q = 0.01` by default) along
 * its axis, over the merged points; the footprint's length and width are the sides of the
 * minimum-area quantile rectangle (see {@link footprintRect}; with `q = 0` it is exactly the
 * minimum-area rectangle by convex hull + rotating calipers).
 */
import { finite } from './camera';
import type { DeviceOptions } from './dispatch';
import { describeValue, invalidArgument } from './errors';
import { RegionError, resolveRegions } from './regions';
import type { RegionSpec } from './regions';
import { sceneWorldPoints } from './scene';
import type { Scene } from './scene';
import type { NdArray } from './tensor';

/** The measured geometry of one region, metres. */
export interface RegionMeasurement {
  /** `region0`, `region1`, … in the order the regions were given. */
  id: string;
  /** Points after voxel merging (one per occupied voxel). */
  points: number;
  /**
   * With `up`: the extent along `up`. Without: the smallest of the three principal-axis
   * extents. Metres.
   */
  height: number;
  /**
   * With `up`: the longer side of the minimum-area rectangle of the footprint (the points
   * projected onto the plane ⟂ `up`). Without: the largest principal-axis extent. Metres.
   */
  length: number;
  /** The shorter footprint side (with `up`), or the middle principal-axis extent. Metres. */
  width: number;
  /** Mean of the merged points (world frame, metres). */
  centroid: [number, number, number];
  /**
   * Per frame: the fraction of the frame's pixels that gave this region a 3D point (in the
   * region's mask and with valid depth). 0 where the region is not seen.
   */
  coverage: number[];
}

/** The relation of two regions, metres. */
export interface PairMeasurement {
  a: string;
  b: string;
  /** Distance between the two centroids. */
  centroidDistance: number;
  /**
   * Closest distance between the two merged point sets (exact nearest-neighbour search);
   * `0` when the regions share an occupied voxel (they overlap or touch).
   */
  gap: number;
}

/** What {@link measure} returns; `JSON.stringify` of it is the `sr3d measure --json` output. */
export interface MeasureResult {
  units: 'm';
  /**
   * Present only when the scene has no `up` direction: the extents are along the principal
   * axes of each region's points (length ≥ width ≥ height), not along gravity.
   */
  axes?: 'principal-axes';
  regions: RegionMeasurement[];
  pairs: PairMeasurement[];
}

/** Options of the geometry shared by {@link measure} and {@link measurePoints}. */
export interface MeasureGeometryOptions {
  /**
   * Voxel edge for merging the points of all frames (one point per occupied voxel, the mean
   * of its points), metres. Defaults to `0.01`.
   */
  voxel?: number;
  /**
   * Quantile q of the robust extents `Q(1-q) - Q(q)` and of the footprint trimming, in
   * [0, 0.25); 0 gives plain min/max. Defaults to `0.01`.
   */
  quantile?: number;
}

// ---- small numeric helpers ------------------------------------------------------------

/** numpy 'linear' quantile of an ascending array. */
function quantileSorted(a: Float64Array, q: number): number {
  const pos = q * (a.length - 1);
  const k = Math.floor(pos);
  const k2 = Math.min(k + 1, a.length - 1);
  return a[k] + (a[k2] - a[k]) * (pos - k);
}

/** `Q(1-q) - Q(q)` of values (sorted in place). */
function quantileRange(values: Float64Array, q: number): { lo: number; hi: number } {
  values.sort();
  return { lo: quantileSorted(values, q), hi: quantileSorted(values, 1 - q) };
}

function normalize3(v: ArrayLike<number>): [number, number, number] {
  const n = Math.hypot(v[0], v[1], v[2]);
  return [v[0] / n, v[1] / n, v[2] / n];
}

/** Two unit vectors completing `up` to a right-handed orthonormal basis. */
function planeBasis(up: readonly number[]): [[number, number, number], [number, number, number]] {
  // Cross with the world axis least aligned with up (numerically the safest).
  const ax = Math.abs(up[0]) <= Math.abs(up[1]) && Math.abs(up[0]) <= Math.abs(up[2]) ? [1, 0, 0]
    : Math.abs(up[1]) <= Math.abs(up[2]) ? [0, 1, 0] : [0, 0, 1];
  const e1 = normalize3([up[1] * ax[2] - up[2] * ax[1], up[2] * ax[0] - up[0] * ax[2], up[0] * ax[1] - up[1] * ax[0]]);
  const e2: [number, number, number] = [up[1] * e1[2] - up[2] * e1[1], up[2] * e1[0] - up[0] * e1[2], up[0] * e1[1] - up[1] * e1[0]];
  return [e1, e2];
}

// ---- voxel merging --------------------------------------------------------------------

/** Points merged on a voxel grid: one point (the mean) per occupied voxel. */
export interface MergedPoints {
  /** (N,3) float64 voxel means, metres. */
  points: Float64Array;
  /** N integer keys of the occupied voxels (comparable between sets merged with the same grid). */
  keys: Float64Array;
}

/** The integer voxel index range of a grid shared by several point sets. */
export interface VoxelGrid {
  voxel: number;
  /** Smallest voxel index per axis. */
  min: [number, number, number];
  /** Number of voxel indices per axis. */
  count: [number, number, number];
}

/**
 * The smallest grid of `voxel`-sized cells (aligned to the world origin) holding every finite
 * point of the sets. Throws when the keys would not fit a double exactly (absurd extents).
 */
export function voxelGridOf(sets: readonly ArrayLike<number>[], voxel: number): VoxelGrid {
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  for (const p of sets) {
    for (let i = 0; i + 2 < p.length; i += 3) {
      for (let a = 0; a < 3; a++) {
        const k = Math.floor(p[i + a] / voxel);
        if (k < lo[a]) lo[a] = k;
        if (k > hi[a]) hi[a] = k;
      }
    }
  }
  if (lo[0] === Infinity) return { voxel, min: [0, 0, 0], count: [1, 1, 1] };
  const count: [number, number, number] = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
  if (count[0] * count[1] * count[2] > Number.MAX_SAFE_INTEGER) {
    throw invalidArgument(`a voxel size giving at most 2^53 voxels over the points' extent (${count.map((c) => (c * voxel).toPrecision(3)).join(' x ')} m)`,
      'voxel', `${voxel} m. Fix: pass a larger voxel, or check the scene's depthScale and poses`, true);
  }
  return { voxel, min: [lo[0], lo[1], lo[2]], count };
}

/**
 * Merges (N,3) points (metres; only finite ones are passed) on `grid`: one point per occupied
 * voxel, the mean of the points in it, in first-seen order.
 */
export function voxelMerge(points: ArrayLike<number>, grid: VoxelGrid): MergedPoints {
  const { voxel, min, count } = grid;
  const index = new Map<number, number>();
  let sums = new Float64Array(3 * 1024), counts = new Uint32Array(1024), keys = new Float64Array(1024);
  let n = 0;
  for (let i = 0; i + 2 < points.length; i += 3) {
    const x = points[i], y = points[i + 1], z = points[i + 2];
    const key = ((Math.floor(x / voxel) - min[0]) * count[1] + (Math.floor(y / voxel) - min[1])) * count[2] + (Math.floor(z / voxel) - min[2]);
    let j = index.get(key);
    if (j === undefined) {
      if (n === counts.length) {
        const s = new Float64Array(6 * n); s.set(sums); sums = s;
        const c = new Uint32Array(2 * n); c.set(counts); counts = c;
        const k = new Float64Array(2 * n); k.set(keys); keys = k;
      }
      j = n++;
      index.set(key, j);
      keys[j] = key;
    }
    sums[3 * j] += x; sums[3 * j + 1] += y; sums[3 * j + 2] += z;
    counts[j]++;
  }
  const out = new Float64Array(3 * n);
  for (let j = 0; j < n; j++) for (let a = 0; a < 3; a++) out[3 * j + a] = sums[3 * j + a] / counts[j];
  return { points: out, keys: keys.slice(0, n) };
}

// ---- 2D: convex hull and minimum-area rectangle ----------------------------------------

/** Convex hull (Andrew's monotone chain), counter-clockwise, no collinear points: indices into xy. */
export function convexHull2d(xy: Float64Array): number[] {
  const n = xy.length / 2;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => xy[2 * i] - xy[2 * j] || xy[2 * i + 1] - xy[2 * j + 1]);
  if (n < 3) return order;
  const cross = (o: number, a: number, b: number) =>
    (xy[2 * a] - xy[2 * o]) * (xy[2 * b + 1] - xy[2 * o + 1]) - (xy[2 * a + 1] - xy[2 * o + 1]) * (xy[2 * b] - xy[2 * o]);
  const hull: number[] = [];
  for (const i of order) {
    while (hull.length >= 2 && cross(hull[hull.length - 2], hull[hull.length - 1], i) <= 0) hull.pop();
    hull.push(i);
  }
  for (let t = order.length - 2, lower = hull.length + 1; t >= 0; t--) {
    const i = order[t];
    while (hull.length >= lower && cross(hull[hull.length - 2], hull[hull.length - 1], i) <= 0) hull.pop();
    hull.push(i);
  }
  hull.pop();
  return hull;
}

/** A rectangle in the plane: unit axis `u` (the long side) and its sides. */
export interface Rect2d {
  /** Unit direction of the long side. */
  u: [number, number];
  /** Long side. */
  length: number;
  /** Short side. */
  width: number;
}

/**
 * The minimum-area rectangle enclosing 2D points (x0, y0, x1, y1, …) by rotating calipers
 * over the convex hull: the optimal rectangle has a side collinear with a hull edge
 * (Freeman & Shapira 1975), and the extreme points along each edge direction and its normal
 * advance monotonically around the hull (Toussaint 1983), so all edges cost O(h).
 */
export function minAreaRect(xy: Float64Array): Rect2d {
  const hull = convexHull2d(xy);
  const h = hull.length;
  const X = (k: number) => xy[2 * hull[((k % h) + h) % h]], Y = (k: number) => xy[2 * hull[((k % h) + h) % h] + 1];
  if (h === 0) return { u: [1, 0], length: 0, width: 0 };
  if (h < 3) {
    const dx = X(h - 1) - X(0), dy = Y(h - 1) - Y(0), d = Math.hypot(dx, dy);
    return { u: d > 0 ? [dx / d, dy / d] : [1, 0], length: d, width: 0 };
  }
  let best = { area: Infinity, u: [1, 0] as [number, number], a: 0, b: 0 };
  let j = 1, k = 1, l = 1; // unwrapped hull indices (taken mod h)
  for (let i = 0; i < h; i++) {
    const ex = X(i + 1) - X(i), ey = Y(i + 1) - Y(i), e = Math.hypot(ex, ey);
    const ux = ex / e, uy = ey / e, nx = -uy, ny = ux; // n points into the CCW hull
    const du = (m: number) => (X(m) - X(i)) * ux + (Y(m) - Y(i)) * uy;
    const dn = (m: number) => (X(m) - X(i)) * nx + (Y(m) - Y(i)) * ny;
    // Around the CCW hull from edge i come max along u (j), max along n (k), min along u (l);
    // each only moves forward. The step caps guard against rounding on near-collinear hulls.
    if (j < i + 1) j = i + 1;
    for (let s = 0; s < h && du(j + 1) > du(j); s++) j++;
    if (k < j) k = j;
    for (let s = 0; s < h && dn(k + 1) > dn(k); s++) k++;
    if (l < k) l = k;
    for (let s = 0; s < h && du(l + 1) < du(l); s++) l++;
    const a = du(j) - du(l), b = dn(k);
    if (a * b < best.area) best = { area: a * b, u: [ux, uy], a, b };
  }
  return best.a >= best.b
    ? { u: best.u, length: best.a, width: best.b }
    : { u: [-best.u[1], best.u[0]], length: best.b, width: best.a };
}

// ---- 3D: nearest neighbours and principal axes ------------------------------------------

/**
 * A static kd-tree over (N,3) points: the points are reordered so that each subtree
 * [lo, hi) holds its median at (lo + hi) >> 1, split on the axis of largest spread.
 */
export class KdTree3 {
  private readonly p: Float64Array;
  private readonly axis: Uint8Array;
  private static readonly LEAF = 8;

  constructor(points: Float64Array) {
    this.p = Float64Array.from(points);
    this.axis = new Uint8Array(points.length / 3);
    this.build(0, points.length / 3);
  }

  get size(): number {
    return this.axis.length;
  }

  private swap(i: number, j: number): void {
    const p = this.p;
    for (let a = 0; a < 3; a++) { const t = p[3 * i + a]; p[3 * i + a] = p[3 * j + a]; p[3 * j + a] = t; }
  }

  private build(lo: number, hi: number): void {
    if (hi - lo <= KdTree3.LEAF) return;
    const p = this.p;
    const mn = [Infinity, Infinity, Infinity], mx = [-Infinity, -Infinity, -Infinity];
    for (let i = lo; i < hi; i++) for (let a = 0; a < 3; a++) { const v = p[3 * i + a]; if (v < mn[a]) mn[a] = v; if (v > mx[a]) mx[a] = v; }
    const ax = mx[0] - mn[0] >= mx[1] - mn[1] && mx[0] - mn[0] >= mx[2] - mn[2] ? 0 : mx[1] - mn[1] >= mx[2] - mn[2] ? 1 : 2;
    const mid = (lo + hi) >> 1;
    // Quickselect (Hoare) of the median on axis ax.
    let l = lo, r = hi - 1;
    while (l < r) {
      const pivot = p[3 * ((l + r) >> 1) + ax];
      let i = l, j = r;
      while (i <= j) {
        while (p[3 * i + ax] < pivot) i++;
        while (p[3 * j + ax] > pivot) j--;
        if (i <= j) { this.swap(i, j); i++; j--; }
      }
      if (mid <= j) r = j; else if (mid >= i) l = i; else break;
    }
    this.axis[mid] = ax;
    this.build(lo, mid);
    this.build(mid + 1, hi);
  }

  /** Squared distance from (x, y, z) to the nearest point, or `bound` if none is closer. */
  nearestSq(x: number, y: number, z: number, bound = Infinity): number {
    const p = this.p;
    let best = bound;
    const visit = (lo: number, hi: number): void => {
      if (hi - lo <= KdTree3.LEAF) {
        for (let i = lo; i < hi; i++) {
          const dx = p[3 * i] - x, dy = p[3 * i + 1] - y, dz = p[3 * i + 2] - z;
          const d = dx * dx + dy * dy + dz * dz;
          if (d < best) best = d;
        }
        return;
      }
      const mid = (lo + hi) >> 1, ax = this.axis[mid];
      const dx = p[3 * mid] - x, dy = p[3 * mid + 1] - y, dz = p[3 * mid + 2] - z;
      const d = dx * dx + dy * dy + dz * dz;
      if (d < best) best = d;
      const off = (ax === 0 ? x : ax === 1 ? y : z) - p[3 * mid + ax];
      if (off < 0) { visit(lo, mid); if (off * off < best) visit(mid + 1, hi); }
      else { visit(mid + 1, hi); if (off * off < best) visit(lo, mid); }
    };
    visit(0, this.axis.length);
    return best;
  }
}

/**
 * Exact closest distance between two (N,3) point sets (each point of the smaller set
 * queried in a kd-tree of the larger, pruned by the best distance so far).
 */
export function closestDistance(a: Float64Array, b: Float64Array): number {
  if (a.length === 0 || b.length === 0) return NaN;
  const [small, large] = a.length <= b.length ? [a, b] : [b, a];
  const tree = new KdTree3(large);
  let best = Infinity;
  for (let i = 0; i < small.length; i += 3) best = tree.nearestSq(small[i], small[i + 1], small[i + 2], best);
  return Math.sqrt(best);
}

/** Eigenvectors of a symmetric 3x3 matrix (cyclic Jacobi), as the columns' rows: [v0, v1, v2]. */
function symmetricEigenvectors(m: number[][]): number[][] {
  const a = m.map((r) => [...r]);
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[0][1] ** 2 + a[0][2] ** 2 + a[1][2] ** 2;
    if (off <= 1e-30 * (a[0][0] ** 2 + a[1][1] ** 2 + a[2][2] ** 2) || off === 0) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      if (a[p][q] === 0) continue;
      const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < 3; k++) { // A <- A J
        const akp = a[k][p], akq = a[k][q];
        a[k][p] = c * akp - s * akq; a[k][q] = s * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) { // A <- J^T A
        const apk = a[p][k], aqk = a[q][k];
        a[p][k] = c * apk - s * aqk; a[q][k] = s * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) { // V <- V J
        const vkp = v[k][p], vkq = v[k][q];
        v[k][p] = c * vkp - s * vkq; v[k][q] = s * vkp + c * vkq;
      }
    }
  }
  return [0, 1, 2].map((j) => [v[0][j], v[1][j], v[2][j]]);
}

// ---- one region's extents ---------------------------------------------------------------

/** Extents of one merged point set (metres). */
export interface Extents {
  height: number;
  length: number;
  width: number;
  centroid: [number, number, number];
}

function project(points: Float64Array, d: readonly number[]): Float64Array {
  const out = new Float64Array(points.length / 3);
  for (let i = 0; i < out.length; i++) out[i] = points[3 * i] * d[0] + points[3 * i + 1] * d[1] + points[3 * i + 2] * d[2];
  return out;
}

function centroidOf(points: Float64Array): [number, number, number] {
  const n = points.length / 3, c: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < n; i++) for (let a = 0; a < 3; a++) c[a] += points[3 * i + a];
  return [c[0] / n, c[1] / n, c[2] / n];
}

const range = (v: Float64Array, q: number) => { const r = quantileRange(v, q); return r.hi - r.lo; };

/**
 * Height, length, width and centroid of merged points (at least one point).
 *
 * With `up` (a unit vector): height = `Q(1-q) - Q(q)` of `p·up`; length ≥ width are the sides
 * of {@link footprintRect} of the points projected onto the plane ⟂ up.
 *
 * Without `up` (`null`): the principal axes of the points' covariance; the three quantile
 * ranges along them, sorted, are length ≥ width ≥ height.
 */
export function extentsOf(points: Float64Array, up: readonly number[] | null, q: number): Extents {
  const n = points.length / 3;
  const centroid = centroidOf(points);
  if (up === null) {
    const cov = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (let i = 0; i < n; i++) {
      const d = [points[3 * i] - centroid[0], points[3 * i + 1] - centroid[1], points[3 * i + 2] - centroid[2]];
      for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) cov[r][c] += d[r] * d[c];
    }
    const ext = symmetricEigenvectors(cov).map((v) => range(project(points, v), q)).sort((x, y) => y - x);
    return { length: ext[0], width: ext[1], height: ext[2], centroid };
  }
  const height = range(project(points, up), q);
  const [e1, e2] = planeBasis(up);
  const s = project(points, e1), t = project(points, e2);
  const rect = footprintRect(s, t, q);
  return { height, length: rect.length, width: rect.width, centroid };
}

/** The `Q(q)` and `Q(1-q)` of values by selection (values are reordered). */
function selectRange(v: Float64Array, q: number): number {
  const at = (pos: number) => {
    const k = Math.floor(pos), f = pos - k;
    const a = select(v, k);
    return f > 0 ? a + (select(v, k + 1) - a) * f : a;
  };
  return at((1 - q) * (v.length - 1)) - at(q * (v.length - 1));
}

/** The k-th smallest value (Hoare quickselect, median-of-3 pivot); reorders v. */
function select(v: Float64Array, k: number): number {
  let lo = 0, hi = v.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    const a = v[lo], b = v[mid], c = v[hi];
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    let i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) { const x = v[i]; v[i] = v[j]; v[j] = x; i++; j--; }
    }
    if (k <= j) hi = j; else if (k >= i) lo = i; else return v[k];
  }
  return v[k];
}

/**
 * The footprint rectangle of 2D points (s, t): with q = 0 exactly the minimum-area
 * rectangle ({@link minAreaRect}). With q > 0 the robust version: the orientation minimizing
 * the area of the quantile box `range_q(along) · range_q(across)`, searched over every 1°
 * (the objective has period 90°) and the hull-edge directions of the footprint trimmed by
 * distance (points farther from the median than the `Q(1-q)` of distances dropped, so the
 * exact min-area rectangle of the clean points is a candidate), then refined to 0.01°;
 * the sides are the quantile ranges of all points along the chosen axes. A single stray
 * point can tilt the exact rectangle of the hull by degrees (its orientation comes from
 * two hull points); the quantile box ignores up to a fraction q of strays per side.
 */
export function footprintRect(s: Float64Array, t: Float64Array, q: number): { length: number; width: number; u: [number, number] } {
  const n = s.length;
  if (q === 0) {
    const xy = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) { xy[2 * i] = s[i]; xy[2 * i + 1] = t[i]; }
    const r = minAreaRect(xy);
    return { length: r.length, width: r.width, u: r.u };
  }
  // The orientation search runs on an evenly strided subset (the objective is a quantile, a
  // few thousand samples pin it well); the final sides use every point.
  const stride = Math.max(1, Math.ceil(n / 4096)), m = Math.ceil(n / stride);
  const ss = new Float64Array(m), ts = new Float64Array(m);
  for (let i = 0, k = 0; i < n; i += stride, k++) { ss[k] = s[i]; ts[k] = t[i]; }
  const along = new Float64Array(m), across = new Float64Array(m);
  const boxOf = (theta: number, xs: Float64Array, ys: Float64Array, a: Float64Array, b: Float64Array) => {
    const c = Math.cos(theta), sn = Math.sin(theta);
    for (let i = 0; i < xs.length; i++) { a[i] = xs[i] * c + ys[i] * sn; b[i] = -xs[i] * sn + ys[i] * c; }
    return [selectRange(a, q), selectRange(b, q)];
  };
  const area = (theta: number) => { const [a, b] = boxOf(theta, ss, ts, along, across); return a * b; };
  const candidates: number[] = [];
  for (let d = 0; d < 90; d++) candidates.push((d * Math.PI) / 180);
  const ms = quantileSorted(Float64Array.from(ss).sort(), 0.5), mt = quantileSorted(Float64Array.from(ts).sort(), 0.5);
  const dist = new Float64Array(m);
  for (let i = 0; i < m; i++) dist[i] = Math.hypot(ss[i] - ms, ts[i] - mt);
  const cut = quantileSorted(Float64Array.from(dist).sort(), 1 - q);
  const kept: number[] = [];
  for (let i = 0; i < m; i++) if (dist[i] <= cut) kept.push(ss[i], ts[i]);
  const hull = convexHull2d(Float64Array.from(kept));
  for (let e = 0; e < hull.length; e++) {
    const i = hull[e], j = hull[(e + 1) % hull.length];
    candidates.push(Math.atan2(kept[2 * j + 1] - kept[2 * i + 1], kept[2 * j] - kept[2 * i]));
  }
  let best = candidates[0], bestArea = Infinity;
  for (const th of candidates) { const a = area(th); if (a < bestArea) { bestArea = a; best = th; } }
  // Refine: ±1° around the best at 0.1°, then ±0.1° at 0.01°.
  for (const step of [0.1, 0.01]) {
    const center = best;
    for (let k = -10; k <= 10; k++) {
      const th = center + (k * step * Math.PI) / 180, a = area(th);
      if (a < bestArea) { bestArea = a; best = th; }
    }
  }
  const [a, b] = boxOf(best, s, t, new Float64Array(n), new Float64Array(n));
  const u: [number, number] = [Math.cos(best), Math.sin(best)];
  return a >= b ? { length: a, width: b, u } : { length: b, width: a, u: [-u[1], u[0]] };
}

// ---- point sets -> result ---------------------------------------------------------------

/** One region's points, as gathered from the frames. */
export interface RegionPoints {
  /** (N,3) world points, metres, all finite. */
  points: Float32Array | Float64Array;
  /** Per frame: the fraction of the frame's pixels that gave a point (see {@link RegionMeasurement.coverage}). */
  coverage?: number[];
}

/** Options of {@link measurePoints}. */
export interface MeasurePointsOptions extends MeasureGeometryOptions {
  /** The world's up direction (any length), or `null` for principal axes. Defaults to `null`. */
  up?: ArrayLike<number> | null;
}

export function readMeasureOptions(opts: MeasurePointsOptions | undefined): { voxel: number; quantile: number; up: number[] | null } {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
  const voxel = opts?.voxel ?? 0.01;
  if (!finite(voxel) || !(voxel > 0)) throw invalidArgument('a finite positive voxel size (metres)', 'voxel', voxel);
  const quantile = opts?.quantile ?? 0.01;
  if (!finite(quantile) || quantile < 0 || quantile >= 0.25) throw invalidArgument('a number in [0, 0.25)', 'quantile', quantile);
  const up = opts?.up ?? null;
  let u: number[] | null = null;
  if (up !== null) {
    const a = Array.isArray(up) || ArrayBuffer.isView(up) ? Array.from(up as ArrayLike<number>) : null;
    if (!a || a.length !== 3 || !a.every(finite) || Math.hypot(a[0], a[1], a[2]) === 0) {
      throw invalidArgument('3 finite numbers, not all zero (the world up direction)', 'up', up);
    }
    u = normalize3(a);
  }
  return { voxel, quantile, up: u };
}

/**
 * The measurement of regions given as world point sets (the geometry of {@link measure},
 * without a scene): voxel merging on one world-aligned grid, extents, centroids and, for each
 * pair, centroid distance and gap. A region with no point is an error naming it.
 */
export function measurePoints(regions: readonly RegionPoints[], opts?: MeasurePointsOptions): MeasureResult {
  const { voxel, quantile, up } = readMeasureOptions(opts);
  if (!Array.isArray(regions) || regions.length === 0) throw invalidArgument('at least one region', 'regions', regions);
  regions.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || !(r.points instanceof Float32Array || r.points instanceof Float64Array) || r.points.length % 3 !== 0) {
      throw invalidArgument('{ points: (N,3) Float32Array or Float64Array }', `regions[${i}]`, r);
    }
    if (r.points.length === 0) {
      throw invalidArgument('at least one valid 3D point', `region${i}`,
        'none (no pixel of its mask has valid depth). Fix: check the region lies in frames with depth (a box3d: that its center is in world metres and the poses are camera-to-world)', true);
    }
  });
  const grid = voxelGridOf(regions.map((r) => r.points), voxel);
  const merged = regions.map((r) => voxelMerge(r.points, grid));
  const out: MeasureResult = { units: 'm', regions: [], pairs: [] };
  if (up === null) out.axes = 'principal-axes';
  merged.forEach((m, i) => {
    const e = extentsOf(m.points, up, quantile);
    out.regions.push({
      id: `region${i}`, points: m.points.length / 3, height: e.height, length: e.length, width: e.width,
      centroid: e.centroid, coverage: regions[i].coverage ?? [],
    });
  });
  for (let i = 0; i < merged.length; i++) {
    const keys = new Set(merged[i].keys);
    for (let j = i + 1; j < merged.length; j++) {
      const ci = out.regions[i].centroid, cj = out.regions[j].centroid;
      const shared = merged[j].keys.some((k) => keys.has(k));
      out.pairs.push({
        a: `region${i}`, b: `region${j}`,
        centroidDistance: Math.hypot(ci[0] - cj[0], ci[1] - cj[1], ci[2] - cj[2]),
        gap: shared ? 0 : closestDistance(merged[i].points, merged[j].points),
      });
    }
  }
  return out;
}

// ---- scenes -----------------------------------------------------------------------------

/** Options of {@link measure}. */
export interface MeasureOptions extends MeasureGeometryOptions, DeviceOptions {
  /**
   * The world's up direction (any length) for height and footprint; `null` measures along
   * each region's principal axes. Defaults to the scene's `up` (principal axes when it has none).
   */
  up?: ArrayLike<number> | null;
  /**
   * 3D boxes only: grow the box by this much on every side before its masks are taken,
   * metres. The measured size then includes whatever lies in the margin (the floor under an
   * object, a wall behind it). Defaults to `0` (the box as given).
   */
  margin?: number;
  /** Each frame's world points (H,W,3) float32 (e.g. `sceneWorldPoints`), reused instead of recomputed. Defaults to none. */
  worldPoints?: readonly NdArray<Float32Array>[];
}

/** Per-frame masks of one region (a {@link ResolvedRegion} fits). */
export interface RegionMasks {
  /** Defaults to `region<i>`. */
  id?: string;
  /** One (H,W) uint8 mask per scene frame (nonzero = inside). */
  masks: readonly NdArray<Uint8Array>[];
}

/**
 * Gathers each region's world points (pixels in its mask with a finite point) and its
 * per-frame coverage. A region whose masks hold no valid point is a {@link RegionError}.
 */
export function gatherRegionPoints(worldPoints: readonly NdArray<Float32Array>[], regions: readonly RegionMasks[]): RegionPoints[] {
  return regions.map((r, ri) => {
    if (!r || !Array.isArray(r.masks) || r.masks.length !== worldPoints.length) {
      throw new RegionError(`Expected one mask per frame (${worldPoints.length}) for regions[${ri}].masks but received ${describeValue(r?.masks)}. ` +
        'Fix: pass the masks of resolveRegions(scene, regions)', ri);
    }
    const counts = r.masks.map((m, f) => {
      const p = worldPoints[f].data, md = m.data;
      if (md.length * 3 !== p.length) {
        throw new RegionError(`Expected a mask of ${p.length / 3} pixels (frame ${f}'s size) for regions[${ri}].masks[${f}] but received ${md.length} pixels. ` +
          'Fix: give masks at each frame\'s full resolution', ri);
      }
      let n = 0;
      for (let i = 0; i < md.length; i++) if (md[i] && Number.isFinite(p[3 * i]) && Number.isFinite(p[3 * i + 1]) && Number.isFinite(p[3 * i + 2])) n++;
      return n;
    });
    const total = counts.reduce((a, b) => a + b, 0);
    const id = r.id ?? `region${ri}`;
    if (total === 0) {
      const pixels = r.masks.map((m) => m.data.reduce((a: number, b: number) => a + (b ? 1 : 0), 0));
      const where = pixels.map((n, f) => (n ? `frame ${f}: ${n}` : '')).filter(Boolean).join(', ');
      throw new RegionError(`Expected at least one valid 3D point for ${id} but received none: its mask pixels (${where || 'none'}) all lack valid depth. ` +
        'Fix: mark the region on frames (and pixels) where the depth map has measurements, or give it on more frames', ri);
    }
    const points = new Float32Array(3 * total);
    let o = 0;
    r.masks.forEach((m, f) => {
      const p = worldPoints[f].data, md = m.data;
      for (let i = 0; i < md.length; i++) {
        if (md[i] && Number.isFinite(p[3 * i]) && Number.isFinite(p[3 * i + 1]) && Number.isFinite(p[3 * i + 2])) {
          points[o++] = p[3 * i]; points[o++] = p[3 * i + 1]; points[o++] = p[3 * i + 2];
        }
      }
    });
    return { points, coverage: counts.map((n, f) => n / (worldPoints[f].data.length / 3)) };
  });
}

/**
 * Measures regions of a scene in metres (issue 5): the world points of every frame
 * (back-projected depth, or the frame's point map), each region's points under its masks over
 * all frames, merged across frames on a voxel grid, then per region `height` (along `up`),
 * `length` ≥ `width` (minimum-area rectangle of the footprint), `centroid`, `points` and
 * per-frame `coverage`, and per pair `centroidDistance` and `gap`. See the module comment for
 * the robust quantiles; without `up` the extents are along principal axes and the result says
 * `axes: 'principal-axes'`.
 *
 * 3D boxes select the surfaces seen inside the box (margin `0` by default), so a box drawn
 * around an object measures the object's visible surfaces and never more than the box.
 *
 * @param regions region specs (`{ frame, box }`, `{ frame, mask }`, `{ masks }`, `{ box3d }`), or
 *   all of them already resolved to per-frame masks (`resolveRegions`).
 * @throws RegionError for a bad region or one with no valid 3D point; SceneError-like
 *   InvalidArgumentErrors for bad options.
 */
export async function measure(scene: Scene, regions: readonly (RegionSpec | RegionMasks)[], opts?: MeasureOptions): Promise<MeasureResult> {
  const { voxel, quantile, up } = readMeasureOptions({ ...opts, up: opts?.up === undefined ? scene?.up ?? null : opts.up });
  if (!scene || !Array.isArray(scene.frames) || scene.frames.length === 0) {
    throw invalidArgument('a scene with frames (loadScene or sceneFromFrames)', 'scene', scene);
  }
  if (!Array.isArray(regions) || regions.length === 0) {
    throw new RegionError(`Expected at least one region for regions but received ${describeValue(regions)}. Fix: give a { frame, box }, { frame, mask } or { box3d } region`, null);
  }
  const device: DeviceOptions = { device: opts?.device };
  const world = opts?.worldPoints ?? await sceneWorldPoints(scene, device);
  const isMasks = (r: unknown) => r !== null && typeof r === 'object' && Array.isArray((r as RegionMasks).masks) &&
    (r as RegionMasks).masks.length > 0 && (r as RegionMasks).masks.every((m) => m !== null && typeof m === 'object' && 'data' in m);
  const resolved: readonly RegionMasks[] = regions.every(isMasks)
    ? (regions as RegionMasks[]).map((r, i) => ({ id: r.id ?? `region${i}`, masks: r.masks }))
    : await resolveRegions(scene, regions as RegionSpec[], { ...device, worldPoints: world, margin: opts?.margin });
  return measurePoints(gatherRegionPoints(world, resolved), { voxel, quantile, up });
}
