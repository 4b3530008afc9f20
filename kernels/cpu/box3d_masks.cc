#include "../box3d_masks.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "simd.h"

namespace sr3d {

namespace {

bool all_finite(const double* v, int n) {
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

// Inverse of the 3x3 block of a camera-to-world pose (row-major 4x4), by the adjugate;
// false when it is singular.
bool invert_pose(const float* pose, double inv[9], double t[3]) {
  double m[9];
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) m[3 * r + c] = pose[4 * r + c];
    t[r] = pose[4 * r + 3];
  }
  const double c00 = m[4] * m[8] - m[5] * m[7], c01 = m[5] * m[6] - m[3] * m[8],
               c02 = m[3] * m[7] - m[4] * m[6];
  const double det = m[0] * c00 + m[1] * c01 + m[2] * c02;
  if (!(std::fabs(det) > 1e-12) || !std::isfinite(det)) return false;
  const double id = 1.0 / det;
  inv[0] = c00 * id;
  inv[1] = (m[2] * m[7] - m[1] * m[8]) * id;
  inv[2] = (m[1] * m[5] - m[2] * m[4]) * id;
  inv[3] = c01 * id;
  inv[4] = (m[0] * m[8] - m[2] * m[6]) * id;
  inv[5] = (m[2] * m[3] - m[0] * m[5]) * id;
  inv[6] = c02 * id;
  inv[7] = (m[1] * m[6] - m[0] * m[7]) * id;
  inv[8] = (m[0] * m[4] - m[1] * m[3]) * id;
  return true;
}

struct Pt {
  double u, v;
};

double cross(const Pt& o, const Pt& a, const Pt& b) {
  return (a.u - o.u) * (b.v - o.v) - (a.v - o.v) * (b.u - o.u);
}

}  // namespace

void box3d_masks_check(const Box3dMasksArgs& a) {
  if (a.frames < 0 || a.height < 0 || a.width < 0)
    throw_invalid_argument("non-negative sizes", "points", "a negative size");
  const Box3d& b = a.box;
  if (!all_finite(b.center, 3))
    throw_invalid_argument("3 finite numbers (metres)", "box3d.center", "a non-finite entry");
  if (!all_finite(b.rotation, 9))
    throw_invalid_argument("a finite 3x3 rotation", "box3d.rotation", "a non-finite entry");
  for (int i = 0; i < 3; ++i)
    if (!(b.half[i] > 0) || !std::isfinite(b.half[i]))
      throw_invalid_argument("3 finite positive extents (metres)", "box3d.size",
                             "extent " + format_number(2 * b.half[i]) + " on axis " + std::to_string(i));
  if (a.mode == Box3dMaskMode::kProject) {
    if (!(a.near_z > 0) || !std::isfinite(a.near_z))
      throw_invalid_argument("a finite positive distance (metres)", "near", format_number(a.near_z));
    if (a.frames > 0 && !a.intrinsics) throw_internal("box3d_masks: null intrinsics");
    for (int64_t f = 0; f < a.frames; ++f) {
      const float* k = a.intrinsics + 4 * f;
      for (int i = 0; i < 4; ++i)
        if (!std::isfinite(k[i]) || (i < 2 && !(k[i] > 0)))
          throw_invalid_argument("finite intrinsics with positive fx and fy",
                                 "intrinsics[" + std::to_string(f) + "]",
                                 "{fx: " + format_number(k[0]) + ", fy: " + format_number(k[1]) +
                                     ", cx: " + format_number(k[2]) + ", cy: " + format_number(k[3]) + "}");
      double inv[9], t[3];
      if (a.poses) {
        for (int i = 0; i < 16; ++i)
          if (!std::isfinite(a.poses[16 * f + i]))
            throw_invalid_argument("16 finite numbers", "pose[" + std::to_string(f) + "]",
                                   "a non-finite entry at index " + std::to_string(i));
        if (!invert_pose(a.poses + 16 * f, inv, t))
          throw_invalid_argument("an invertible camera-to-world pose", "pose[" + std::to_string(f) + "]",
                                 "a singular rotation block");
      }
    }
  } else if (a.frames * a.height * a.width > 0 && !a.points) {
    throw_internal("box3d_masks: null points");
  }
  if (a.frames > 0 && (!a.inside || !a.valid)) throw_internal("box3d_masks: null counts");
  if (a.frames * a.height * a.width > 0 && !a.masks) throw_internal("box3d_masks: null masks");
}

void box3d_masks(const Box3dMasksArgs& a, Impl impl) {
  box3d_masks_check(a);
  return run_impl(
      impl, [&] { return cpu::box3d_masks_reference(a); }, [&] { return cpu::box3d_masks_fast(a); },
      SR3D_CUDA_PATH(cuda::box3d_masks_host(a)));
}

Box3dF box3d_float(const Box3d& b) {
  Box3dF o;
  for (int i = 0; i < 3; ++i) {
    o.c[i] = static_cast<float>(b.center[i]);
    o.h[i] = static_cast<float>(b.half[i]);
  }
  for (int i = 0; i < 9; ++i) o.r[i] = static_cast<float>(b.rotation[i]);
  return o;
}

int box3d_frame_hull(const Box3dMasksArgs& a, int64_t f, HullEdge* edges) {
  const float* k = a.intrinsics + 4 * f;
  const double fx = k[0], fy = k[1], cx = k[2], cy = k[3], near_z = a.near_z;
  double inv[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, t[3] = {0, 0, 0};
  if (a.poses && !invert_pose(a.poses + 16 * f, inv, t)) return 0;  // rejected by the check
  // Corner i has sign (+ if bit) of x (bit 0), y (bit 1), z (bit 2) in the box frame.
  double cam[8][3];
  const Box3d& b = a.box;
  for (int i = 0; i < 8; ++i) {
    const double l[3] = {(i & 1 ? 1 : -1) * b.half[0], (i & 2 ? 1 : -1) * b.half[1],
                         (i & 4 ? 1 : -1) * b.half[2]};
    double d[3];
    for (int r = 0; r < 3; ++r)
      d[r] = b.center[r] + b.rotation[3 * r] * l[0] + b.rotation[3 * r + 1] * l[1] +
             b.rotation[3 * r + 2] * l[2] - t[r];
    for (int r = 0; r < 3; ++r) cam[i][r] = inv[3 * r] * d[0] + inv[3 * r + 1] * d[1] + inv[3 * r + 2] * d[2];
  }
  // The box clipped to z >= near: the corners in front and the 12 edges' crossings.
  Pt pts[kMaxHullEdges];
  int n = 0;
  auto add = [&](double x, double y, double z) { pts[n++] = {fx * x / z + cx, fy * y / z + cy}; };
  for (int i = 0; i < 8; ++i)
    if (cam[i][2] >= near_z) add(cam[i][0], cam[i][1], cam[i][2]);
  for (int i = 0; i < 8; ++i)
    for (int bit = 1; bit < 8; bit <<= 1) {
      if (i & bit) continue;
      const double* p = cam[i];
      const double* q = cam[i | bit];
      if ((p[2] >= near_z) == (q[2] >= near_z)) continue;
      const double s = (near_z - p[2]) / (q[2] - p[2]);
      add(p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1]), near_z);
    }
  if (n < 3) return 0;
  // Andrew's monotone chain: counter-clockwise, collinear points dropped.
  std::sort(pts, pts + n, [](const Pt& p, const Pt& q) { return p.u < q.u || (p.u == q.u && p.v < q.v); });
  Pt hull[2 * kMaxHullEdges];
  int h = 0;
  for (int i = 0; i < n; ++i) {
    while (h >= 2 && cross(hull[h - 2], hull[h - 1], pts[i]) <= 0) --h;
    hull[h++] = pts[i];
  }
  for (int i = n - 2, lower = h + 1; i >= 0; --i) {
    while (h >= lower && cross(hull[h - 2], hull[h - 1], pts[i]) <= 0) --h;
    hull[h++] = pts[i];
  }
  --h;  // the last point repeats the first
  if (h < 3) return 0;
  for (int i = 0; i < h; ++i) {
    const Pt& p = hull[i];
    const Pt& q = hull[(i + 1) % h];
    edges[i] = {p.u, p.v, q.u - p.u, q.v - p.v};
  }
  return h;
}

namespace cpu {

namespace {

bool finite_point(const float* p) {
  return std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
}

SR3D_TARGET_CLONES
void inside_row(const Box3dF& b, const float* __restrict p, int64_t n, uint8_t* __restrict out,
                int64_t* inside, int64_t* valid) {
  int64_t in = 0, ok = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = p[3 * i], y = p[3 * i + 1], z = p[3 * i + 2];
    const bool m = box3d_inside(b, x, y, z);
    out[i] = m;
    in += m;
    ok += (std::fabs(x) <= FLT_MAX) & (std::fabs(y) <= FLT_MAX) & (std::fabs(z) <= FLT_MAX);
  }
  *inside = in;
  *valid = ok;
}

// The columns u in [0, W) of row v where one edge's test holds: an interval, because the
// test is monotone in u. Start at the real crossing and step to the exact boundary of the
// rounded test, so the result equals the per-pixel test of the reference bit for bit.
void edge_span(const HullEdge& e, double v, int64_t W, int64_t* lo, int64_t* hi) {
  if (e.dy == 0) {  // the test does not depend on u
    if (!hull_edge_inside(e, 0.0, v)) *hi = -1;
    return;
  }
  auto ok = [&](int64_t u) { return hull_edge_inside(e, static_cast<double>(u), v); };
  const double cross_u = e.x0 + e.dx * (v - e.y0) / e.dy;
  if (e.dy > 0) {  // holds for u <= boundary
    double g = std::floor(cross_u);
    int64_t c = g >= static_cast<double>(W - 1) ? W - 1 : g <= -1.0 ? -1 : static_cast<int64_t>(g);
    while (c + 1 <= W - 1 && ok(c + 1)) ++c;
    while (c >= 0 && !ok(c)) --c;
    *hi = std::min(*hi, c);
  } else {  // holds for u >= boundary
    double g = std::ceil(cross_u);
    int64_t c = g <= 0.0 ? 0 : g >= static_cast<double>(W) ? W : static_cast<int64_t>(g);
    while (c - 1 >= 0 && ok(c - 1)) --c;
    while (c <= W - 1 && !ok(c)) ++c;
    *lo = std::max(*lo, c);
  }
}

}  // namespace

// Per pixel, the predicates of the header, written for obviousness.
void box3d_masks_reference(const Box3dMasksArgs& a) {
  const int64_t HW = a.height * a.width;
  if (a.mode == Box3dMaskMode::kInside) {
    const Box3dF b = box3d_float(a.box);
    for (int64_t f = 0; f < a.frames; ++f) {
      a.inside[f] = a.valid[f] = 0;
      for (int64_t i = f * HW; i < (f + 1) * HW; ++i) {
        const float* p = a.points + 3 * i;
        a.masks[i] = box3d_inside(b, p[0], p[1], p[2]) ? 1 : 0;
        a.inside[f] += a.masks[i];
        a.valid[f] += finite_point(p) ? 1 : 0;
      }
    }
    return;
  }
  HullEdge edges[kMaxHullEdges];
  for (int64_t f = 0; f < a.frames; ++f) {
    const int n = box3d_frame_hull(a, f, edges);
    a.inside[f] = 0;
    a.valid[f] = HW;
    for (int64_t v = 0; v < a.height; ++v)
      for (int64_t u = 0; u < a.width; ++u) {
        bool in = n > 0;
        for (int e = 0; e < n; ++e)
          in = in && hull_edge_inside(edges[e], static_cast<double>(u), static_cast<double>(v));
        a.masks[f * HW + v * a.width + u] = in ? 1 : 0;
        a.inside[f] += in;
      }
  }
}

// One task per pixel row; per-row counts summed per frame afterwards (integers: any order).
void box3d_masks_fast(const Box3dMasksArgs& a) {
  const int64_t H = a.height, W = a.width, rows = a.frames * H;
  std::vector<int64_t> row_in(static_cast<size_t>(rows)), row_ok(static_cast<size_t>(rows));
  if (a.mode == Box3dMaskMode::kInside) {
    const Box3dF b = box3d_float(a.box);
    parallel_for(rows, 0, [&](int, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        inside_row(b, a.points + 3 * r * W, W, a.masks + r * W, &row_in[r], &row_ok[r]);
    });
  } else {
    std::vector<HullEdge> edges(static_cast<size_t>(a.frames * kMaxHullEdges));
    std::vector<int> count(static_cast<size_t>(a.frames));
    for (int64_t f = 0; f < a.frames; ++f) count[f] = box3d_frame_hull(a, f, &edges[f * kMaxHullEdges]);
    parallel_for(rows, 0, [&](int, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t f = r / H;
        const double v = static_cast<double>(r % H);
        int64_t lo = 0, hi = count[f] > 0 ? W - 1 : -1;
        for (int e = 0; e < count[f] && lo <= hi; ++e) edge_span(edges[f * kMaxHullEdges + e], v, W, &lo, &hi);
        uint8_t* row = a.masks + r * W;
        std::memset(row, 0, static_cast<size_t>(W));
        if (lo <= hi) std::memset(row + lo, 1, static_cast<size_t>(hi - lo + 1));
        row_in[r] = lo <= hi ? hi - lo + 1 : 0;
        row_ok[r] = W;
      }
    });
  }
  for (int64_t f = 0; f < a.frames; ++f) {
    a.inside[f] = a.valid[f] = 0;
    for (int64_t r = f * H; r < (f + 1) * H; ++r) {
      a.inside[f] += row_in[r];
      a.valid[f] += row_ok[r];
    }
  }
}

}  // namespace cpu
}  // namespace sr3d
