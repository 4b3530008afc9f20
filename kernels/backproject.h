// backproject: depth -> 3D points (spec Part A §A2, Part B §7.2).
//
//   depth:      (F,H,W) float32 metres or uint16 units (metres = value * depth_scale),
//               row-major, contiguous. Invalid = 0, negative, NaN or Inf (after scaling).
//   intrinsics: (F,4) float32 {fx, fy, cx, cy} per frame, pixels; pixel centres at integer
//               (u, v) (no +0.5, as Video-3D-LLM / LLaVA-3D).
//   poses:      (F,16) float32 row-major camera-to-world, or nullptr (camera frame, OpenCV
//               axes x right, y down, z forward).
//   -> points:  (F,H,W,3) float32; NaN in all three components where invalid.
//   -> valid:   (F,H,W) uint8, 1 where the depth was valid and the point finite (a depth
//               near FLT_MAX that overflows the point is invalid, like NaN depth).
//
// Math, in float32 with no FMA contraction so every path rounds identically:
//   z = raw * depth_scale; x = (u - cx) * z * (1/fx); y = (v - cy) * z * (1/fy)
//   world = R * (x, y, z) + t, evaluated left to right per row of R.
#pragma once
#include "common.h"

namespace sr3d {

struct BackprojectArgs {
  const void* depth = nullptr;
  DType depth_dtype = DType::kFloat32;  // kFloat32 or kUint16
  int64_t frames = 0, height = 0, width = 0;
  float depth_scale = 1.0f;
  const float* intrinsics = nullptr;  // frames * 4
  const float* poses = nullptr;       // frames * 16 or nullptr
  float* points = nullptr;            // frames * H * W * 3
  uint8_t* valid = nullptr;           // frames * H * W (may be nullptr)
};

// Checks the invariants the TypeScript layer already validated (finite non-zero focal
// lengths, finite poses, dtype); throws sr3d::Error(kInvalidArgument) if broken.
void backproject_check(const BackprojectArgs& a);

void backproject(const BackprojectArgs& a, Impl impl);

namespace cpu {
void backproject_reference(const BackprojectArgs& a);
void backproject_fast(const BackprojectArgs& a);

// One row of a frame into SoA buffers (x, y, z of length W; NaN where invalid) and
// an optional validity row. The fast paths of backproject and the fused scene op share it.
struct FrameParams {
  float ifx, ify, cx, cy;
  float r[9], t[3];
  bool has_pose;
};
FrameParams frame_params(const BackprojectArgs& a, int64_t frame);
// depth_row points at the first pixel to compute, whose column is u0; `width` pixels.
void backproject_row(const void* depth_row, DType dtype, float depth_scale, int64_t width,
                     float v, const FrameParams& p, float* x, float* y, float* z,
                     uint8_t* valid, int64_t u0 = 0);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// All frames in one launch; every pointer in device_args is a device pointer.
void backproject(const BackprojectArgs& device_args, void* stream);
// Host pointers in and out: copies to the current device, runs, copies back.
void backproject_host(const BackprojectArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
