#include "../backproject.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "simd.h"

namespace sr3d {

void backproject_check(const BackprojectArgs& a) {
  if (a.depth_dtype != DType::kFloat32 && a.depth_dtype != DType::kUint16)
    throw_invalid_argument("a float32 or uint16 depth map", "depth", dtype_name(a.depth_dtype));
  if (a.frames < 0 || a.height < 0 || a.width < 0)
    throw_invalid_argument("non-negative sizes", "depth", "a negative size");
  if (!(a.depth_scale > 0) || !std::isfinite(a.depth_scale))
    throw_invalid_argument("a finite positive number (metres per depth unit)", "depthScale",
                           format_number(a.depth_scale));
  int64_t n = a.frames * a.height * a.width;
  if (n == 0) return;
  if (!a.depth || !a.intrinsics || !a.points) throw_internal("backproject: null buffer");
  for (int64_t f = 0; f < a.frames; ++f) {
    const float* k = a.intrinsics + 4 * f;
    for (int i = 0; i < 4; ++i)
      if (!std::isfinite(k[i]) || (i < 2 && k[i] == 0))
        throw_invalid_argument("finite intrinsics with non-zero fx and fy",
                               "intrinsics[" + std::to_string(f) + "]",
                               "{fx: " + format_number(k[0]) + ", fy: " + format_number(k[1]) +
                                   ", cx: " + format_number(k[2]) + ", cy: " + format_number(k[3]) + "}");
    if (a.poses)
      for (int i = 0; i < 16; ++i)
        if (!std::isfinite(a.poses[16 * f + i]))
          throw_invalid_argument("16 finite numbers", "pose[" + std::to_string(f) + "]",
                                 "a non-finite entry at index " + std::to_string(i));
  }
}

void backproject(const BackprojectArgs& a, Impl impl) {
  backproject_check(a);
  return run_impl(
      impl, [&] { return cpu::backproject_reference(a); }, [&] { return cpu::backproject_fast(a); },
      SR3D_CUDA_PATH(cuda::backproject_host(a)));
}

namespace cpu {

// The plain loop, written for obviousness: the fast path must equal it bit for bit.
void backproject_reference(const BackprojectArgs& a) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t f = 0; f < a.frames; ++f) {
    const float* k = a.intrinsics + 4 * f;
    const float fx = k[0], fy = k[1], cx = k[2], cy = k[3];
    const float ifx = 1.0f / fx, ify = 1.0f / fy;
    const float* P = a.poses ? a.poses + 16 * f : nullptr;
    for (int64_t v = 0; v < a.height; ++v) {
      for (int64_t u = 0; u < a.width; ++u) {
        int64_t i = (f * a.height + v) * a.width + u;
        float z = a.depth_dtype == DType::kUint16
                      ? static_cast<float>(static_cast<const uint16_t*>(a.depth)[i]) * a.depth_scale
                      : static_cast<const float*>(a.depth)[i] * a.depth_scale;
        bool ok = z > 0.0f && z <= std::numeric_limits<float>::max();
        float out[3] = {nan, nan, nan};
        if (ok) {
          float x = (static_cast<float>(u) - cx) * z * ifx;
          float y = (static_cast<float>(v) - cy) * z * ify;
          if (P) {
            out[0] = P[0] * x + P[1] * y + P[2] * z + P[3];
            out[1] = P[4] * x + P[5] * y + P[6] * z + P[7];
            out[2] = P[8] * x + P[9] * y + P[10] * z + P[11];
          } else {
            out[0] = x; out[1] = y; out[2] = z;
          }
          // Depth near FLT_MAX can overflow the point: that pixel is invalid too.
          if (!(std::isfinite(out[0]) && std::isfinite(out[1]) && std::isfinite(out[2]))) {
            ok = false;
            out[0] = out[1] = out[2] = nan;
          }
        }
        a.points[3 * i] = out[0];
        a.points[3 * i + 1] = out[1];
        a.points[3 * i + 2] = out[2];
        if (a.valid) a.valid[i] = ok ? 1 : 0;
      }
    }
  }
}

FrameParams frame_params(const BackprojectArgs& a, int64_t f) {
  FrameParams p{};
  const float* k = a.intrinsics + 4 * f;
  p.ifx = 1.0f / k[0];
  p.ify = 1.0f / k[1];
  p.cx = k[2];
  p.cy = k[3];
  p.has_pose = a.poses != nullptr;
  if (p.has_pose) {
    const float* P = a.poses + 16 * f;
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) p.r[3 * r + c] = P[4 * r + c];
      p.t[r] = P[4 * r + 3];
    }
  }
  return p;
}

// Branch-free over a row so the compiler vectorizes it (each ISA clone): the pose test is
// a template parameter (a run-time `pose ? a : b` inside the loop blocks if-conversion),
// and the loop index is a 32-bit int (W <= 2^20; int64 -> float needs AVX-512DQ).
template <bool kPose, typename T>
static inline void row_loop(const T* __restrict d, float scale, int W, int u0, float v,
                            const FrameParams& p, float* __restrict xs, float* __restrict ys,
                            float* __restrict zs, uint8_t* __restrict valid) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float fmax = std::numeric_limits<float>::max();
  const float cx = p.cx, ifx = p.ifx, yk = v - p.cy, ify = p.ify;
  const float r0 = p.r[0], r1 = p.r[1], r2 = p.r[2], r3 = p.r[3], r4 = p.r[4], r5 = p.r[5],
              r6 = p.r[6], r7 = p.r[7], r8 = p.r[8], t0 = p.t[0], t1 = p.t[1], t2 = p.t[2];
  for (int u = 0; u < W; ++u) {
    float z = static_cast<float>(d[u]) * scale;
    float x = (static_cast<float>(u + u0) - cx) * z * ifx;
    float y = yk * z * ify;
    float X = x, Y = y, Z = z;
    if (kPose) {
      X = r0 * x + r1 * y + r2 * z + t0;
      Y = r3 * x + r4 * y + r5 * z + t1;
      Z = r6 * x + r7 * y + r8 * z + t2;
    }
    // Valid depth whose point is finite (depth near FLT_MAX can overflow it).
    bool ok = (z > 0.0f) & (z <= fmax) & (std::fabs(X) <= fmax) & (std::fabs(Y) <= fmax) &
              (std::fabs(Z) <= fmax);
    xs[u] = ok ? X : nan;
    ys[u] = ok ? Y : nan;
    zs[u] = ok ? Z : nan;
    valid[u] = ok;
  }
}

template <typename T>
static inline void row_impl(const T* __restrict d, float scale, int W, int u0, float v,
                            const FrameParams& p, float* __restrict xs, float* __restrict ys,
                            float* __restrict zs, uint8_t* __restrict valid) {
  if (p.has_pose) row_loop<true>(d, scale, W, u0, v, p, xs, ys, zs, valid);
  else row_loop<false>(d, scale, W, u0, v, p, xs, ys, zs, valid);
}

SR3D_TARGET_CLONES
static void row_f32(const float* d, float s, int W, int u0, float v, const FrameParams& p,
                    float* x, float* y, float* z, uint8_t* valid) {
  row_impl(d, s, W, u0, v, p, x, y, z, valid);
}
SR3D_TARGET_CLONES
static void row_u16(const uint16_t* d, float s, int W, int u0, float v, const FrameParams& p,
                    float* x, float* y, float* z, uint8_t* valid) {
  row_impl(d, s, W, u0, v, p, x, y, z, valid);
}

void backproject_row(const void* depth_row, DType dtype, float depth_scale, int64_t width,
                     float v, const FrameParams& p, float* x, float* y, float* z,
                     uint8_t* valid, int64_t u0) {
  // Callers without a validity output still get one computed (into a small scratch row).
  thread_local std::vector<uint8_t> scratch;
  if (!valid) {
    if (static_cast<int64_t>(scratch.size()) < width) scratch.resize(width);
    valid = scratch.data();
  }
  const int W = static_cast<int>(width);
  if (dtype == DType::kUint16)
    row_u16(static_cast<const uint16_t*>(depth_row), depth_scale, W, static_cast<int>(u0), v, p,
            x, y, z, valid);
  else
    row_f32(static_cast<const float*>(depth_row), depth_scale, W, static_cast<int>(u0), v, p, x,
            y, z, valid);
}

SR3D_TARGET_CLONES
static void interleave3_cached(const float* __restrict x, const float* __restrict y,
                               const float* __restrict z, int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    out[3 * i] = x[i];
    out[3 * i + 1] = y[i];
    out[3 * i + 2] = z[i];
  }
}

// Interleaves into an L1 staging row, then writes it with non-temporal stores: the output
// is written once and never re-read here, and streaming stores skip the read-for-ownership
// that would otherwise add 12 B/px of DRAM traffic to the 12 B/px written.
void interleave3(const float* x, const float* y, const float* z, int64_t n, float* out) {
#if defined(__SSE2__)
  thread_local std::vector<float> stage;
  if (static_cast<int64_t>(stage.size()) < 3 * n) stage.resize(3 * n);
  interleave3_cached(x, y, z, n, stage.data());
  stream_copy(stage.data(), 3 * n, out);
#else
  interleave3_cached(x, y, z, n, out);
#endif
}

// Rows are independent: split all F*H rows over the pool; each row goes through an
// L1-resident SoA buffer and is interleaved into the output (16 B/px moved for f32 depth).
void backproject_fast(const BackprojectArgs& a) {
  const int64_t rows = a.frames * a.height, W = a.width;
  if (rows * W == 0) return;
  const size_t esize = a.depth_dtype == DType::kUint16 ? 2 : 4;
  parallel_for(rows, 0, [&](int, int64_t r0, int64_t r1) {
    RowBuffer buf(W);
    int64_t cur_frame = -1;
    FrameParams p{};
    for (int64_t r = r0; r < r1; ++r) {
      int64_t f = r / a.height, v = r % a.height;
      if (f != cur_frame) { p = frame_params(a, f); cur_frame = f; }
      const char* drow = static_cast<const char*>(a.depth) + r * W * esize;
      backproject_row(drow, a.depth_dtype, a.depth_scale, W, static_cast<float>(v), p, buf.x,
                      buf.y, buf.z, a.valid ? a.valid + r * W : nullptr);
      interleave3(buf.x, buf.y, buf.z, W, a.points + 3 * r * W);
    }
    stream_fence();
  });
}

}  // namespace cpu
}  // namespace sr3d
