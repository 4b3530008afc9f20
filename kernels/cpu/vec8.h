// 8-lane float helpers of the fast CPU nn paths (linear, attention, norms). Internal
// linkage on purpose: every SR3D_TARGET_CLONES clone inlines its own copy and lowers it to
// its own ISA, so the same per-element float operations run whatever the file or the clone.
#pragma once
#include <cstdint>
#include <cstring>

#include "../weights.h"

// The 8-lane vector helpers are always inlined into their callers, so the AVX-vs-SSE
// argument ABI note GCC prints for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sr3d {
namespace {

// ---- vector helpers (GCC vector extensions: every SR3D_TARGET_CLONES clone lowers them to
// its own registers; 8 lanes = one AVX register, two SSE registers) --------------------
typedef float v8f __attribute__((vector_size(32)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));
typedef int32_t v8i32 __attribute__((vector_size(32)));

#define SR3D_INLINE inline __attribute__((always_inline))

SR3D_INLINE v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SR3D_INLINE void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
// bf16 -> f32 is exact: the 16 bits become the high half of the float.
SR3D_INLINE v8f load8_bf16(const uint16_t* p) {
  v8u16 h;
  std::memcpy(&h, p, sizeof h);
  v8u32 u = __builtin_convertvector(h, v8u32) << 16;
  v8f f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
// The one fixed reduction tree of 8 lanes every fast path uses.
SR3D_INLINE float hsum8(v8f v) {
  float a[8];
  std::memcpy(a, &v, sizeof a);
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}
SR3D_INLINE float dot_f32(const float* a, const float* b, int64_t k) {
  v8f acc = {};
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t c = 0; c < k8; c += 8) acc += load8(a + c) * load8(b + c);
  float s = hsum8(acc);
  for (int64_t c = k8; c < k; ++c) s += a[c] * b[c];
  return s;
}

// One register tile: NX input rows x NW weight rows, 8-lane partial sums over k. With NX=4,
// NW=2 a step loads 4 x vectors + 2 weight vectors for 8 multiply-adds, and each weight
// vector is converted from bf16 once for 4 rows.
template <int NX, int NW, bool BF16>
SR3D_INLINE void dot_tile(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t k,
                          float* res) {
  v8f acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = v8f{};
  const int64_t k8 = k & ~int64_t{7};
  const float* wf = static_cast<const float*>(w);
  const uint16_t* wb = static_cast<const uint16_t*>(w);
  for (int64_t c = 0; c < k8; c += 8) {
    v8f wv[NW];
    for (int j = 0; j < NW; ++j) wv[j] = BF16 ? load8_bf16(wb + j * ldw + c) : load8(wf + j * ldw + c);
    for (int i = 0; i < NX; ++i) {
      const v8f xv = load8(x + i * ldx + c);
      for (int j = 0; j < NW; ++j) acc[i][j] += xv * wv[j];
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      float s = hsum8(acc[i][j]);
      for (int64_t c = k8; c < k; ++c)
        s += x[i * ldx + c] * (BF16 ? bf16_to_float(wb[j * ldw + c]) : wf[j * ldw + c]);
      res[i * NW + j] = s;
    }
}

template <bool BF16>
SR3D_INLINE void dot_tile_any(int nx, int nw, const float* x, int64_t ldx, const void* w,
                              int64_t ldw, int64_t k, float* res) {
  switch (nx * 4 + nw) {
    case 1 * 4 + 1: return dot_tile<1, 1, BF16>(x, ldx, w, ldw, k, res);
    case 1 * 4 + 2: return dot_tile<1, 2, BF16>(x, ldx, w, ldw, k, res);
    case 2 * 4 + 1: return dot_tile<2, 1, BF16>(x, ldx, w, ldw, k, res);
    case 2 * 4 + 2: return dot_tile<2, 2, BF16>(x, ldx, w, ldw, k, res);
    case 3 * 4 + 1: return dot_tile<3, 1, BF16>(x, ldx, w, ldw, k, res);
    case 3 * 4 + 2: return dot_tile<3, 2, BF16>(x, ldx, w, ldw, k, res);
    case 4 * 4 + 1: return dot_tile<4, 1, BF16>(x, ldx, w, ldw, k, res);
    default: return dot_tile<4, 2, BF16>(x, ldx, w, ldw, k, res);
  }
}

}  // namespace
}  // namespace sr3d
