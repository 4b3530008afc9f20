// NEON kernels of the CPU Linear fast path (see linear_neon.h). Compiled on every target, empty
// off aarch64. Only baseline Armv8.0 Advanced SIMD is used: the optional fp16 arithmetic,
// dot-product (int8) and bf16 (BFDOT / BFMMLA) instructions would round differently from the
// float32 mul-then-add the reference and the x86 kernels perform, so they are detected and
// reported (cpu_features) but not used. The f16 -> f32 (FCVTL) and bf16 -> f32 (SHLL #16)
// widenings are exact and baseline.
#include "linear_neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>

namespace sr3d {
namespace cpu {

namespace {

#define SR3D_NEON_INLINE inline __attribute__((always_inline))

// An 8-lane partial sum as two 4-lane halves: lanes 0-3 and 4-7 of vec8.h's v8f.
struct Acc8 {
  float32x4_t lo, hi;
};

SR3D_NEON_INLINE Acc8 zero8() { return {vdupq_n_f32(0.f), vdupq_n_f32(0.f)}; }

// acc += a * b lane by lane, rounded after the multiply and after the add (no FMA), as the
// portable v8f code and the x86 kernels.
SR3D_NEON_INLINE void mul_add(Acc8& acc, float32x4_t alo, float32x4_t ahi, float32x4_t blo,
                              float32x4_t bhi) {
  acc.lo = vaddq_f32(acc.lo, vmulq_f32(alo, blo));
  acc.hi = vaddq_f32(acc.hi, vmulq_f32(ahi, bhi));
}

// vec8.h's hsum8 tree: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
SR3D_NEON_INLINE float hsum8_neon(const Acc8& a) {
  const float32x4_t s = vaddq_f32(a.lo, a.hi);                          // a_l + a_(l+4)
  const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));  // (0+4)+(2+6), (1+5)+(3+7)
  return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

// 8 weights at w + i as float32 (exact for every type).
template <WType T>
SR3D_NEON_INLINE void load_w8(const void* w, int64_t i, float32x4_t& lo, float32x4_t& hi) {
  if constexpr (T == WType::kF32) {
    const float* p = static_cast<const float*>(w) + i;
    lo = vld1q_f32(p);
    hi = vld1q_f32(p + 4);
  } else if constexpr (T == WType::kBF16) {  // the 16 bits become the float's high half
    const uint16x8_t h = vld1q_u16(static_cast<const uint16_t*>(w) + i);
    lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
  } else {  // IEEE half (FPCR.AHP = 0, as Linux leaves it); subnormals widen exactly
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(static_cast<const uint16_t*>(w) + i));
    lo = vcvt_f32_f16(vget_low_f16(h));
    hi = vcvt_high_f32_f16(h);
  }
}

template <WType T>
SR3D_NEON_INLINE float weight_at(const void* w, int64_t i) {
  if constexpr (T == WType::kF32) return static_cast<const float*>(w)[i];
  else if constexpr (T == WType::kBF16) return bf16_to_float(static_cast<const uint16_t*>(w)[i]);
  else return f16_to_float(static_cast<const uint16_t*>(w)[i]);
}

// ---- decode GEMV --------------------------------------------------------------------------
// As linear.cc's gemv_avx2: 4 weight rows at a time (4 independent add chains, the x vector
// loaded once for all of them) and a software prefetch of the next 4-row tile while this one is
// summed, since with n == 1 the weights stream from DRAM once and nothing else hides latency.
template <WType T>
void gemv_rows_neon(const float* x, int64_t k, const void* w, int64_t rows, const float* bias,
                    float* y) {
  constexpr int64_t esz = T == WType::kF32 ? 4 : 2;
  const int64_t k8 = k & ~int64_t{7};
  const char* wc = static_cast<const char*>(w);
  auto finish = [&](const Acc8& acc, int64_t r) {
    float s = hsum8_neon(acc);
    for (int64_t c = k8; c < k; ++c) s += x[c] * weight_at<T>(w, r * k + c);
    return bias ? s + bias[r] : s;
  };
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const void* w0 = wc + r * k * esz;
    const void* w1 = wc + (r + 1) * k * esz;
    const void* w2 = wc + (r + 2) * k * esz;
    const void* w3 = wc + (r + 3) * k * esz;
    const char* pf = wc + (r + 4) * k * esz;  // the next tile: 4 * 8 * esz bytes of it per step
    Acc8 a0 = zero8(), a1 = zero8(), a2 = zero8(), a3 = zero8();
    for (int64_t c = 0; c < k8; c += 8) {
      __builtin_prefetch(pf + c * 4 * esz);
      if (esz == 4) __builtin_prefetch(pf + c * 4 * esz + 64);
      const float32x4_t xl = vld1q_f32(x + c), xh = vld1q_f32(x + c + 4);
      float32x4_t wl, wh;
      load_w8<T>(w0, c, wl, wh);
      mul_add(a0, xl, xh, wl, wh);
      load_w8<T>(w1, c, wl, wh);
      mul_add(a1, xl, xh, wl, wh);
      load_w8<T>(w2, c, wl, wh);
      mul_add(a2, xl, xh, wl, wh);
      load_w8<T>(w3, c, wl, wh);
      mul_add(a3, xl, xh, wl, wh);
    }
    y[r] = finish(a0, r);
    y[r + 1] = finish(a1, r + 1);
    y[r + 2] = finish(a2, r + 2);
    y[r + 3] = finish(a3, r + 3);
  }
  for (; r < rows; ++r) {
    const void* w0 = wc + r * k * esz;
    Acc8 a0 = zero8();
    for (int64_t c = 0; c < k8; c += 8) {
      float32x4_t wl, wh;
      load_w8<T>(w0, c, wl, wh);
      mul_add(a0, vld1q_f32(x + c), vld1q_f32(x + c + 4), wl, wh);
    }
    y[r] = finish(a0, r);
  }
}

// ---- GEMM register tile ---------------------------------------------------------------------
// NX input rows x NW weight rows, at most 3 x 2: 12 accumulator registers of AArch64's 32, and
// per 8-column step 10 loads feed 12 multiply-adds with nothing on the stack. GCC 12 hoists every
// load of a step, so the 4 x 2 (the portable tile), 3 x 3 and 4 x 3 tiles each kept 3-7 vectors
// on the stack inside the inner loop (checked with objdump). bf16 weights are widened once per
// step for all NX rows.
template <int NX, int NW, bool BF16>
SR3D_NEON_INLINE void tile_neon(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t k,
                                const float* bias, float* y, int64_t ldy) {
  constexpr WType T = BF16 ? WType::kBF16 : WType::kF32;
  Acc8 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = zero8();
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t c = 0; c < k8; c += 8) {
    float32x4_t wl[NW], wh[NW];
    for (int j = 0; j < NW; ++j) load_w8<T>(w, j * ldw + c, wl[j], wh[j]);
    for (int i = 0; i < NX; ++i) {
      const float32x4_t xl = vld1q_f32(x + i * ldx + c);
      for (int j = 0; j < NW; ++j) acc[i][j].lo = vaddq_f32(acc[i][j].lo, vmulq_f32(xl, wl[j]));
    }
    for (int i = 0; i < NX; ++i) {
      const float32x4_t xh = vld1q_f32(x + i * ldx + c + 4);
      for (int j = 0; j < NW; ++j) acc[i][j].hi = vaddq_f32(acc[i][j].hi, vmulq_f32(xh, wh[j]));
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      float s = hsum8_neon(acc[i][j]);
      for (int64_t c = k8; c < k; ++c) s += x[i * ldx + c] * weight_at<T>(w, j * ldw + c);
      if (bias) s += bias[j];
      y[i * ldy + j] = s;
    }
}

template <bool BF16>
void block_neon(const float* x, int64_t n, int64_t k, const void* w, int64_t ldw, int64_t rows,
                const float* bias, float* y, int64_t ldy) {
  constexpr int64_t esz = BF16 ? 2 : 4;
  const char* wc = static_cast<const char*>(w);
  for (int64_t r = 0; r < rows; r += 2) {
    const int nw = static_cast<int>(std::min<int64_t>(2, rows - r));
    const void* wr = wc + r * ldw * esz;
    const float* br = bias ? bias + r : nullptr;
    for (int64_t i = 0; i < n; i += 3) {
      const int nx = static_cast<int>(std::min<int64_t>(3, n - i));
      const float* xi = x + i * k;
      float* yi = y + i * ldy + r;
      switch (nx * 4 + nw) {
#define SR3D_TILE(a, b) \
  case (a) * 4 + (b): tile_neon<(a), (b), BF16>(xi, k, wr, ldw, k, br, yi, ldy); break;
        SR3D_TILE(1, 1) SR3D_TILE(1, 2) SR3D_TILE(2, 1) SR3D_TILE(2, 2) SR3D_TILE(3, 1) SR3D_TILE(3, 2)
#undef SR3D_TILE
        default: break;
      }
    }
  }
}

}  // namespace

void gemv_neon(const float* x, int64_t k, const void* w, WType t, int64_t rows, const float* bias,
               float* y) {
  switch (t) {
    case WType::kF32: return gemv_rows_neon<WType::kF32>(x, k, w, rows, bias, y);
    case WType::kBF16: return gemv_rows_neon<WType::kBF16>(x, k, w, rows, bias, y);
    case WType::kF16: return gemv_rows_neon<WType::kF16>(x, k, w, rows, bias, y);
    default: return;  // quantized weights never come here (linear.cc dequantizes them first)
  }
}

void linear_block_neon(const float* x, int64_t n, int64_t k, const void* w, bool bf16, int64_t ldw,
                       int64_t rows, const float* bias, float* y, int64_t ldy) {
  if (bf16) block_neon<true>(x, n, k, w, ldw, rows, bias, y, ldy);
  else block_neon<false>(x, n, k, w, ldw, rows, bias, y, ldy);
}

void f16_to_f32_neon(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t lo, hi;
    load_w8<WType::kF16>(src, i, lo, hi);
    vst1q_f32(dst + i, lo);
    vst1q_f32(dst + i + 4, hi);
  }
  for (; i < n; ++i) dst[i] = f16_to_float(src[i]);
}

}  // namespace cpu
}  // namespace sr3d
#endif  // __aarch64__
