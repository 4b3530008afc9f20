// The per-pixel back-projection shared by backproject.cu and scene_points.cu.
// Every operation is an explicit round-to-nearest intrinsic in the order of
// kernels/cpu/backproject.cc (no FMA contraction even without --fmad=false), so the
// results equal the CPU paths bit for bit.
#pragma once
#include <cfloat>
#include <cstdint>

#include "../backproject.h"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

// Device view of BackprojectArgs (all pointers on the device).
struct DepthView {
  const void* depth;
  bool u16;
  int64_t height, width, frame_size;  // frame_size = H * W
  float depth_scale;
  const float* intrinsics;  // frames * 4
  const float* poses;       // frames * 16 or nullptr
};

inline DepthView depth_view(const BackprojectArgs& a) {
  return DepthView{a.depth,       a.depth_dtype == DType::kUint16, a.height, a.width,
                   a.height * a.width, a.depth_scale, a.intrinsics, a.poses};
}

__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }

// Pixel i of the flattened (F,H,W) depth -> out (NaN where invalid); returns the depth
// validity (z > 0 && z <= FLT_MAX, NaN fails both) and the point finite.
__device__ __forceinline__ bool backproject_pixel(const DepthView& d, int64_t i, float out[3]) {
  const int64_t f = i / d.frame_size, rem = i - f * d.frame_size;
  const int64_t v = rem / d.width, u = rem - v * d.width;
  const float raw = d.u16 ? static_cast<float>(static_cast<const uint16_t*>(d.depth)[i])
                          : static_cast<const float*>(d.depth)[i];
  const float z = __fmul_rn(raw, d.depth_scale);
  const bool ok = z > 0.0f && z <= FLT_MAX;
  if (!ok) {
    out[0] = out[1] = out[2] = quiet_nan();
    return false;
  }
  const float* k = d.intrinsics + 4 * f;
  const float ifx = __fdiv_rn(1.0f, k[0]), ify = __fdiv_rn(1.0f, k[1]);
  const float x = __fmul_rn(__fmul_rn(__fsub_rn(static_cast<float>(u), k[2]), z), ifx);
  const float y = __fmul_rn(__fmul_rn(__fsub_rn(static_cast<float>(v), k[3]), z), ify);
  if (d.poses) {
    const float* P = d.poses + 16 * f;
    for (int r = 0; r < 3; ++r) {
      const float* row = P + 4 * r;
      out[r] = __fadd_rn(
          __fadd_rn(__fadd_rn(__fmul_rn(row[0], x), __fmul_rn(row[1], y)), __fmul_rn(row[2], z)),
          row[3]);
    }
  } else {
    out[0] = x;
    out[1] = y;
    out[2] = z;
  }
  // A point that overflowed (depth near FLT_MAX) is invalid too, as on the CPU.
  if (!(fabsf(out[0]) <= FLT_MAX && fabsf(out[1]) <= FLT_MAX && fabsf(out[2]) <= FLT_MAX)) {
    out[0] = out[1] = out[2] = quiet_nan();
    return false;
  }
  return true;
}

__device__ __forceinline__ bool finite3(const float p[3]) {
  return fabsf(p[0]) <= FLT_MAX && fabsf(p[1]) <= FLT_MAX && fabsf(p[2]) <= FLT_MAX;
}

// The host-pointer entry points (backproject_host, scene_points_host) share this: depth,
// intrinsics and poses to the device on `s` (to_device: mapped under zero copy), points /
// valid as outputs (output_for), and the copies back.
struct DepthUpload {
  DeviceBuffer<uint8_t> depth, valid;
  DeviceBuffer<float> intrinsics, poses, points;
  BackprojectArgs args;  // the device view
  const BackprojectArgs host;

  DepthUpload(const BackprojectArgs& h, RoundTrip& rt)
      : depth(rt.upload(static_cast<const uint8_t*>(h.depth),
                        h.frames * h.height * h.width * (h.depth_dtype == DType::kUint16 ? 2 : 4))),
        valid(rt.output(h.valid, h.valid ? h.frames * h.height * h.width : 0)),
        intrinsics(rt.upload(h.intrinsics, h.frames * 4)),
        poses(rt.upload(h.poses, h.poses ? h.frames * 16 : 0)),
        points(rt.output(h.points, h.frames * h.height * h.width * 3)),
        args(h),
        host(h) {
    args.depth = depth.get();
    args.intrinsics = intrinsics.get();
    args.poses = h.poses ? poses.get() : nullptr;
    args.points = points.get();
    args.valid = h.valid ? valid.get() : nullptr;
  }

  // Copies points (and valid) back to the host arrays and waits for the stream.
  void download(RoundTrip& rt) {
    if (host.valid) to_host(host.valid, valid, rt.stream());
    rt.download(host.points, points);
  }
};

}  // namespace cuda
}  // namespace sr3d
