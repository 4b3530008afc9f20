// box3d_masks: per-frame masks of one 3D box (spec Part A §A7, Part B §8).
//
// Box: center c (metres), rotation R (3x3 row-major, box-to-world: p_world = R p_box + c),
// half extents h = size / 2 (metres). [INFERRED: Part B §8, the oriented form of Video-3D-LLM's
// axis-aligned test; the spec leaves the method open]
//
//   kInside   points: (F,H,W,3) float32 world points (backproject with poses); a point is
//             valid when its three coordinates are finite.
//             mask = 1 iff the point is valid and |(R^T (p - c))_i| <= h_i for i = x, y, z,
//             evaluated in float32 as written in box3d_inside (no FMA: every path and the
//             JavaScript float32 emulation round identically). Occlusion-aware: only the
//             surfaces each frame sees are tested.
//             valid[f] = valid pixels, inside[f] = mask pixels.
//   kProject  intrinsics: (F,4) fx fy cx cy (pixels, pixel centres at integer coordinates);
//             poses: (F,16) camera-to-world, row-major (null: the box is in camera
//             coordinates). Per frame (float64, on the host): the 8 corners to the camera
//             frame (inverse pose), the box clipped to z >= near (corners in front plus the
//             points where the 12 edges cross z = near), projected with the pinhole model,
//             their 2D convex hull. mask = 1 where the pixel centre (u, v) lies in the closed
//             hull (HullEdge test below, evaluated identically by every path). No part of
//             the box at z >= near, or a hull of zero area: an empty mask. Ignores occlusion.
//             valid[f] = H*W, inside[f] = mask pixels.
//   -> masks: (F,H,W) uint8 (0/1).
// Every path gives the same masks and counts (the predicates are evaluated in the same
// order with the same roundings).
#pragma once
#include <cstdint>

#include "common.h"

namespace sr3d {

enum class Box3dMaskMode { kInside, kProject };

struct Box3d {
  double center[3] = {0, 0, 0};
  double rotation[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  double half[3] = {0, 0, 0};
};

struct Box3dMasksArgs {
  Box3dMaskMode mode = Box3dMaskMode::kInside;
  int64_t frames = 0, height = 0, width = 0;
  Box3d box;
  const float* points = nullptr;      // kInside
  const float* intrinsics = nullptr;  // kProject
  const float* poses = nullptr;       // kProject, optional
  double near_z = 1e-3;               // kProject: clip plane, metres in front of the camera
  uint8_t* masks = nullptr;
  int64_t* inside = nullptr;  // (F)
  int64_t* valid = nullptr;   // (F)
};

void box3d_masks_check(const Box3dMasksArgs& a);
void box3d_masks(const Box3dMasksArgs& a, Impl impl);

// ---- the predicates every path evaluates -------------------------------------------------

// The box in float32 for the kInside test: c, R (row-major) and h rounded once.
struct Box3dF {
  float c[3], r[9], h[3];
};
Box3dF box3d_float(const Box3d& b);

// kInside at one point (the order of operations is part of the contract, see above).
SR3D_HOST_DEVICE inline bool box3d_inside(const Box3dF& b, float px, float py, float pz) {
  const float dx = px - b.c[0], dy = py - b.c[1], dz = pz - b.c[2];
  const float l0 = b.r[0] * dx + b.r[3] * dy + b.r[6] * dz;
  const float l1 = b.r[1] * dx + b.r[4] * dy + b.r[7] * dz;
  const float l2 = b.r[2] * dx + b.r[5] * dy + b.r[8] * dz;
  // NaN fails every comparison, so invalid points are never inside. (Non-short-circuit &
  // so the CPU loop vectorizes.)
  return (l0 >= -b.h[0]) & (l0 <= b.h[0]) & (l1 >= -b.h[1]) & (l1 <= b.h[1]) &
         (l2 >= -b.h[2]) & (l2 <= b.h[2]);
}

// One edge (x0, y0) -> (x0 + dx, y0 + dy) of a counter-clockwise hull in pixel coordinates:
// a point is on the inner side when dx (v - y0) - dy (u - x0) >= 0, evaluated in float64 as
// (dx * (v - y0)) - (dy * (u - x0)). For a fixed row v the value is monotone in u (every
// rounding is monotone), which the fast path's span search relies on.
struct HullEdge {
  double x0, y0, dx, dy;
};
constexpr int kMaxHullEdges = 20;  // 8 corners + 12 edge/near-plane crossings at most

SR3D_HOST_DEVICE inline bool hull_edge_inside(const HullEdge& e, double u, double v) {
  const double a = e.dx * (v - e.y0);
  const double b = e.dy * (u - e.x0);
  return a - b >= 0.0;
}

// Frame f's hull (kProject). Returns the number of edges written to `edges` (0: empty mask).
int box3d_frame_hull(const Box3dMasksArgs& a, int64_t f, HullEdge* edges);

namespace cpu {
void box3d_masks_reference(const Box3dMasksArgs& a);
void box3d_masks_fast(const Box3dMasksArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Device pointers for points/masks/inside/valid; intrinsics/poses stay host pointers (the
// hulls are built on the host).
void box3d_masks(const Box3dMasksArgs& device_args, void* stream);
void box3d_masks_host(const Box3dMasksArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
