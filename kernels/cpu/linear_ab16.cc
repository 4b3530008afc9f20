// CPU Linear in the bf16-activation mode ("ab16"): bf16 weights x activations rounded to bf16,
// float32 sums. linear.h states the arithmetic every path performs; this file runs it four ways:
//   3 AVX-512 BF16: vdpbf16ps, the arithmetic itself.
//   2 AVX-512F and 1 AVX2: the same steps as two FMAs per pair (odd input, then even) with MXCSR
//     set to DAZ | FTZ around the lane loop; on the Zen 5 here vfmadd under DAZ | FTZ and
//     vdpbf16ps agree bit for bit (tests_cpp/ab16_tests.cc checks it wherever both exist).
//   0 portable (GCC vectors; the path on aarch64): FMAs in the default FP mode, the DAZ done
//     while widening the weights and the FTZ by a rare scalar fix-up of results <= 2^-126.
//
// Napkin math. Exact path (linear.cc): bf16 weights widened to float32, 8 MACs per mul + add
// pair on 256-bit vectors. vdpbf16ps: 32 MACs per instruction (16 lanes x 2 pairs); Zen 4 runs
// 512-bit ops as two 256-bit halves, Zen 5 natively. Prefill 128 x 896 -> 4864 is 558 MMAC =
// 17.4 M vdpbf16ps: 2.6 ms on one core at 2 per cycle and 3.3 GHz (the one-core peak measured
// here, ~420 GFLOP/s); the 6 x 4 tile takes ~3.5-4 ms (~70%: 10 loads per 24 vdpbf16ps, the
// trees, the x conversion), the exact path ~14 ms.
// Decode reads each bf16 weight once (2 bytes per MAC; the 0.5B-class model's linears incl.
// lm_head ~0.99 GB per token) and the x row (2 K bytes) from L1: bandwidth-bound on every path,
// so the mode speeds decode only where the weights sit in cache.
//
// x is converted once per call to the format of the kernel (bf16 pairs for vdpbf16ps, float32
// odd / even halves per block for the others) in zero-padded rows of K = cols rounded up to 32;
// the weights are read as stored (bf16 pairs already), a row's last partial block through a
// zero-padded copy.
// GCC 12 flags the _mm256_undefined_* placeholders inside avx512fintrin.h's own conversions as
// (maybe-)uninitialized once inlined (a false positive; the header location decides, so the
// pragmas must precede the include).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "../linear.h"
#include "arg_checks.h"
#include "linear_rows.h"
#include "simd.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define SR3D_AB16_X86 1
#endif

// The vector helpers are always inlined into their callers (no AVX-vs-SSE ABI question).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sr3d {
namespace cpu {
namespace {

#define SR3D_AINLINE inline __attribute__((always_inline))

constexpr int64_t kBlock = 32;  // inputs per step of the 16 lanes (16 pairs)
SR3D_AINLINE int64_t padded_cols(int64_t k) { return (k + kBlock - 1) & ~(kBlock - 1); }

// float32 -> bf16 bits as vcvtne2ps2bf16 (Intel SDM: subnormal -> signed zero, NaN quieted,
// else round to nearest even; the integer add carries into the exponent, so a float32 near
// FLT_MAX becomes infinity).
SR3D_AINLINE uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// bf16 bits -> float with DAZ (a subnormal reads as a zero of its sign).
SR3D_AINLINE float bf16_daz(uint16_t b) {
  return bf16_to_float((b & 0x7f80u) ? b : static_cast<uint16_t>(b & 0x8000u));
}

// One step, a + x * w (DAZ inputs, exact product, RNE, FTZ tiny after rounding), in float64:
// the product of two bf16 is exact there, and when the sum is not, the smaller term lies far
// below half a float32 ulp of the larger, so rounding the double to float is still the correct
// rounding of the exact sum. Below 2^-126, a float32 with an unbounded exponent has ulp
// 2^-150: |v| rounds up to 2^-126 (not tiny) from 2^-126 - 2^-151 on (the tie goes to the
// even 2^-126).
float dp_step(float a, float x, float w) {
  auto daz = [](float f) { return std::fabs(f) < FLT_MIN ? std::copysign(0.f, f) : f; };
  const double v = static_cast<double>(daz(a)) +
                   static_cast<double>(daz(x)) * static_cast<double>(daz(w));
  const double av = std::fabs(v);
  if (!(av < FLT_MIN) || v == 0) return static_cast<float>(v);  // also inf, NaN, exact zeros
  return std::copysign(av >= static_cast<double>(FLT_MIN) - std::ldexp(1.0, -151) ? FLT_MIN : 0.f,
                       static_cast<float>(v));
}

// The end of every output: the fixed tree over the 16 lane sums, the bias.
SR3D_AINLINE float tree16(const float* a) {
  float c[8];
  for (int l = 0; l < 8; ++l) c[l] = a[l] + a[l + 8];
  return ((c[0] + c[4]) + (c[2] + c[6])) + ((c[1] + c[5]) + (c[3] + c[7]));
}
SR3D_AINLINE float finish(const float* lanes, const float* bias, int64_t r) {
  const float t = tree16(lanes);
  return bias ? t + bias[r] : t;
}

// to_bf16 without branches (vectorizes): the same three cases as blends.
SR3D_AINLINE uint32_t to_bf16_bits(uint32_t u) {
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u, zero = (u >> 16) & 0x8000u;
  const uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
  return (u & 0x7f800000u) == 0 ? zero : r;
}

// x row i for the float kernels: per 32-input block, the 16 odd inputs then the 16 even ones
// (lane l's pair), as float32 values of the bf16.
SR3D_TARGET_CLONES
void make_x_split_row(const float* x, int64_t k, float* out) {
  const int64_t kp = padded_cols(k);
  for (int64_t b = 0; b < kp; b += kBlock) {
    uint32_t v[kBlock];
    const int64_t m = std::min(kBlock, k - b);
    if (m == kBlock) {
      std::memcpy(v, x + b, sizeof v);
    } else {
      std::memset(v, 0, sizeof v);
      std::memcpy(v, x + b, static_cast<size_t>(m) * 4);
    }
    uint32_t o[kBlock];
    for (int l = 0; l < 16; ++l) {
      o[l] = to_bf16_bits(v[2 * l + 1]) << 16;
      o[16 + l] = to_bf16_bits(v[2 * l]) << 16;
    }
    std::memcpy(out + b, o, sizeof o);
  }
}
// x row for vdpbf16ps: the bf16 bits in order.
SR3D_TARGET_CLONES
void make_x_bf16_row(const float* x, int64_t k, uint16_t* out) {
  const int64_t kp = padded_cols(k);
  for (int64_t j = 0; j < k; ++j) {
    uint32_t u;
    std::memcpy(&u, x + j, 4);
    out[j] = static_cast<uint16_t>(to_bf16_bits(u));
  }
  for (int64_t j = k; j < kp; ++j) out[j] = 0;
}

// Block pointers of NW weight rows: in place for whole blocks, else a zero-padded copy.
template <int NW>
struct WBlocks {
  alignas(64) uint16_t pad[NW][kBlock];
  const uint16_t* row[NW];
  int64_t k, full;  // cols, whole blocks
  WBlocks(const uint16_t* w, int64_t ldw, int64_t cols) : k(cols), full(cols / kBlock) {
    for (int j = 0; j < NW; ++j) row[j] = w + j * ldw;
    const int64_t rem = k - full * kBlock;
    for (int j = 0; j < NW && rem; ++j) {
      std::memset(pad[j], 0, sizeof pad[j]);
      std::memcpy(pad[j], row[j] + full * kBlock, static_cast<size_t>(rem) * 2);
    }
  }
  bool partial() const { return k % kBlock != 0; }
};

// ---- portable kernels (GCC vectors: NEON on aarch64, SSE on old x86) ------------------------
typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));

SR3D_AINLINE v16f ld16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// acc = step(acc, x, w) per lane: the FMA, then the exact step where the result is a subnormal
// or 2^-126 (FTZ and the window below 2^-126; no more than a branch on normal data).
SR3D_AINLINE v16f step16(const v16f& x, const v16f& w, const v16f& acc) {
  v16f r;
  bool tiny = false;
  for (int l = 0; l < 16; ++l) {
    r[l] = __builtin_fmaf(x[l], w[l], acc[l]);
    tiny |= std::fabs(r[l]) <= FLT_MIN && r[l] != 0.f;
  }
  if (__builtin_expect(tiny, 0))
    for (int l = 0; l < 16; ++l)
      if (std::fabs(r[l]) <= FLT_MIN && r[l] != 0.f) r[l] = dp_step(acc[l], x[l], w[l]);
  return r;
}
// A block's 16 dwords -> the odd (high half) and even (low half) weights, DAZ.
SR3D_AINLINE void split16(const uint16_t* p, v16f* wo, v16f* we) {
  v16u d;
  std::memcpy(&d, p, sizeof d);
  v16u hi = d & 0xffff0000u, lo = d << 16;
  // DAZ: a zero exponent keeps only the sign.
  hi &= reinterpret_cast<v16u>((hi & 0x7f800000u) != 0) | 0x80000000u;
  lo &= reinterpret_cast<v16u>((lo & 0x7f800000u) != 0) | 0x80000000u;
  std::memcpy(wo, &hi, sizeof hi);
  std::memcpy(we, &lo, sizeof lo);
}

template <int NX, int NW>
SR3D_AINLINE void block_portable(v16f (&acc)[NX][NW], const float* xs, int64_t ldx,
                                 const uint16_t* const* wb) {
  v16f wo[NW], we[NW];
  for (int j = 0; j < NW; ++j) split16(wb[j], &wo[j], &we[j]);
  for (int i = 0; i < NX; ++i) {
    const v16f xo = ld16(xs + i * ldx), xe = ld16(xs + i * ldx + 16);
    for (int j = 0; j < NW; ++j) acc[i][j] = step16(xe, we[j], step16(xo, wo[j], acc[i][j]));
  }
}

// NX x rows (split format, ldx floats apart) x NW weight rows (ldw apart) -> y (ldy apart).
template <int NX, int NW>
void tile_portable(const float* xs, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t k,
                   const float* bias, int64_t r0, float* y, int64_t ldy) {
  v16f acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = v16f{};
  WBlocks<NW> wb(w, ldw, k);
  const uint16_t* p[NW];
  for (int64_t b = 0; b < wb.full; ++b) {
    for (int j = 0; j < NW; ++j) p[j] = wb.row[j] + b * kBlock;
    block_portable<NX, NW>(acc, xs + b * kBlock, ldx, p);
  }
  if (wb.partial()) {
    for (int j = 0; j < NW; ++j) p[j] = wb.pad[j];
    block_portable<NX, NW>(acc, xs + wb.full * kBlock, ldx, p);
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      float lanes[16];
      std::memcpy(lanes, &acc[i][j], sizeof lanes);
      y[i * ldy + j] = finish(lanes, bias, r0 + j);
    }
}

#ifdef SR3D_AB16_X86
#define SR3D_TBF __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))
#define SR3D_T512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define SR3D_T2 __attribute__((target("avx2,fma")))

// MXCSR with DAZ (bit 6) and FTZ (bit 15) for the emulated lane loops: vfmadd then performs
// vdpbf16ps's step exactly (the probe in ab16_tests.cc's header comment; the tests recheck it).
// The memory clobbers keep the loop's loads and the stores of its sums inside the window.
struct FlushToZero {
  unsigned saved;
  SR3D_AINLINE FlushToZero() : saved(_mm_getcsr()) {
    _mm_setcsr(saved | 0x8040u);
    asm volatile("" ::: "memory");
  }
  SR3D_AINLINE ~FlushToZero() {
    asm volatile("" ::: "memory");
    _mm_setcsr(saved);
  }
};

// tree16 in registers from c[l] = a[l] + a[l + 8] (8 lanes): d = c[0..3] + c[4..7], then
// (d0 + d2) + (d1 + d3), the same additions.
SR3D_T2 SR3D_AINLINE float tree8(__m256 c) {
  const __m128 d = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
  const __m128 e = _mm_add_ps(d, _mm_movehl_ps(d, d));
  return _mm_cvtss_f32(_mm_add_ss(e, _mm_movehdup_ps(e)));
}

// ---- AVX-512 BF16 -----------------------------------------------------------------------------
// tree16 of 16 accumulators at once, result i in lane i: each level adds the same pairs as
// tree16 (lanes l and l + 8, then l and l + 4 of those, then (0 + 2) and (1 + 3), then the two),
// with the shuffles gathering the operands of two accumulators into one register, so 16 outputs
// cost 45 shuffles / adds instead of ~9 each.
SR3D_TBF SR3D_AINLINE __m512 trees16(const __m512* a) {
  __m512 v[8], w[4], x[2];
  for (int p = 0; p < 8; ++p)  // c = a[0..7] + a[8..15] of a[2p] | a[2p + 1]
    v[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xee));
  for (int q = 0; q < 4; ++q)  // d = c[0..3] + c[4..7] of 4 accumulators, one per 128 bits
    w[q] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * q], v[2 * q + 1], 0x88),
                         _mm512_shuffle_f32x4(v[2 * q], v[2 * q + 1], 0xdd));
  for (int r = 0; r < 2; ++r)  // e = (d0 + d2, d1 + d3)
    x[r] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * r], w[2 * r + 1], 0x44),
                         _mm512_shuffle_ps(w[2 * r], w[2 * r + 1], 0xee));
  // e0 + e1; lane 4t + s holds accumulator 4s + t
  const __m512 y = _mm512_add_ps(_mm512_shuffle_ps(x[0], x[1], 0x88),
                                 _mm512_shuffle_ps(x[0], x[1], 0xdd));
  const __m512i order =
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, y);
}

template <int NX, int NW>
SR3D_TBF SR3D_AINLINE void block_bf16(__m512 (&acc)[NX][NW], const uint16_t* xs, int64_t ldx,
                                      const uint16_t* const* wb) {
  __m512i wv[NW];
  for (int j = 0; j < NW; ++j) wv[j] = _mm512_loadu_si512(wb[j]);
  for (int i = 0; i < NX; ++i) {
    const __m512bh xv = (__m512bh)_mm512_loadu_si512(xs + i * ldx);
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, (__m512bh)wv[j]);
  }
}

// Blocks [b0, b1) of the K / 32 blocks of NX x rows against NW weight rows. acc_io null: the
// whole row (b0 = 0, b1 = K / 32). Else the lane sums continue from acc_io (b0 > 0) and are
// left there (b1 < K / 32): the exact float values, so splitting K changes no result.
// PF: prefetch the next NW-row tile while this one streams (decode: the weights come from DRAM):
// it is contiguous, so NW lines per block walk it in order, as linear.cc's GEMV does (one
// prefetch stream per row instead ran 18944 -> 3584 at ~20 GB/s against the exact path's ~35).
template <int NX, int NW, bool PF>
SR3D_TBF void tile_bf16(const uint16_t* xs, int64_t ldx, const uint16_t* w, int64_t ldw,
                        int64_t k, int64_t b0, int64_t b1, float* acc_io, const float* bias,
                        int64_t r0, float* y, int64_t ldy) {
  const int64_t full = k / kBlock, nbp = padded_cols(k) / kBlock;
  __m512 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j)
      acc[i][j] = acc_io && b0 > 0 ? _mm512_load_ps(acc_io + (i * NW + j) * 16) : _mm512_setzero_ps();
  const uint16_t* p[NW];
  const char* pf = reinterpret_cast<const char*>(w + NW * ldw);
  for (int64_t b = b0; b < std::min(b1, full); ++b) {
    for (int j = 0; j < NW; ++j) p[j] = w + j * ldw + b * kBlock;
    if (PF)
      for (int j = 0; j < NW; ++j) _mm_prefetch(pf + 64 * (b * NW + j), _MM_HINT_T0);
    block_bf16<NX, NW>(acc, xs + b * kBlock, ldx, p);
  }
  if (b1 == nbp && full < nbp) {
    const WBlocks<NW> wb(w, ldw, k);
    for (int j = 0; j < NW; ++j) p[j] = wb.pad[j];
    block_bf16<NX, NW>(acc, xs + full * kBlock, ldx, p);
  }
  if (acc_io && b1 < nbp) {
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) _mm512_store_ps(acc_io + (i * NW + j) * 16, acc[i][j]);
    return;
  }
  if constexpr (NX * NW >= 8) {
    constexpr int N = NX * NW;
    alignas(64) float res[(N + 15) / 16 * 16];
    for (int g = 0; g < N; g += 16) {
      __m512 a[16];
      for (int t = 0; t < 16; ++t)
        a[t] = g + t < N ? acc[(g + t) / NW][(g + t) % NW] : _mm512_setzero_ps();
      _mm512_store_ps(res + g, trees16(a));
    }
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j)
        y[i * ldy + j] = bias ? res[i * NW + j] + bias[r0 + j] : res[i * NW + j];
  } else {
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) {
        const __m256 hi =
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i][j]), 1));
        const float t = tree8(_mm256_add_ps(_mm512_castps512_ps256(acc[i][j]), hi));
        y[i * ldy + j] = bias ? t + bias[r0 + j] : t;
      }
  }
}

// The GEMM for long rows: K in chunks of kKChunk blocks, so a chunk of the NW weight rows
// (3 x 2 KiB) stays in L1 while the x tiles' chunks stream past from L2 (whole 4864-input rows
// did not fit: both operands then came from L2). Lane sums wait in acc between chunks.
constexpr int64_t kKChunk = 32;
template <int NX, int NW>
void tiles_bf16_chunked(const uint16_t* xs, int64_t n, int64_t kp, const uint16_t* w, int64_t k,
                        int64_t r0, int64_t r1, const float* bias, float* y, int64_t ldy) {
  const int64_t nbp = kp / kBlock, ntiles = (n + NX - 1) / NX;
  thread_local std::vector<float> accv;
  if (accv.size() < static_cast<size_t>(ntiles * NX * NW * 16 + 16))
    accv.resize(static_cast<size_t>(ntiles * NX * NW * 16 + 16));
  float* acc = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(accv.data()) + 63) & ~uintptr_t{63});
  auto group = [&](auto nw_tag, int64_t r) {
    constexpr int G = decltype(nw_tag)::value;
    for (int64_t c0 = 0; c0 < nbp; c0 += kKChunk) {
      const int64_t c1 = std::min(nbp, c0 + kKChunk);
      int64_t i = 0;
      for (; i + NX <= n; i += NX)
        tile_bf16<NX, G, false>(xs + i * kp, kp, w + r * k, k, k, c0, c1,
                                acc + i / NX * NX * NW * 16, bias, r, y + i * ldy + r, ldy);
      for (; i < n; ++i)  // the last tile's rows one by one, each in its own slot
        tile_bf16<1, G, false>(xs + i * kp, kp, w + r * k, k, k, c0, c1,
                               acc + (i / NX * NX + i % NX) * NW * 16, bias, r,
                               y + i * ldy + r, ldy);
    }
  };
  int64_t r = r0;
  for (; r + NW <= r1; r += NW) group(std::integral_constant<int, NW>{}, r);
  for (; r < r1; ++r) group(std::integral_constant<int, 1>{}, r);
}

// ---- AVX-512F emulation -----------------------------------------------------------------------
template <int NX, int NW>
SR3D_T512 SR3D_AINLINE void block_512(__m512 (&acc)[NX][NW], const float* xs, int64_t ldx,
                                      const uint16_t* const* wb) {
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  __m512 wo[NW], we[NW];
  for (int j = 0; j < NW; ++j) {
    const __m512i d = _mm512_loadu_si512(wb[j]);
    wo[j] = _mm512_castsi512_ps(_mm512_and_si512(d, hi_mask));
    we[j] = _mm512_castsi512_ps(_mm512_slli_epi32(d, 16));
  }
  for (int i = 0; i < NX; ++i) {
    const __m512 xo = _mm512_loadu_ps(xs + i * ldx), xe = _mm512_loadu_ps(xs + i * ldx + 16);
    for (int j = 0; j < NW; ++j)
      acc[i][j] = _mm512_fmadd_ps(xe, we[j], _mm512_fmadd_ps(xo, wo[j], acc[i][j]));
  }
}

template <int NX, int NW>
SR3D_T512 void tile_512(const float* xs, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t k,
                        const float* bias, int64_t r0, float* y, int64_t ldy) {
  alignas(64) float lanes[NX][NW][16];
  {
    FlushToZero ftz;
    __m512 acc[NX][NW];
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) acc[i][j] = _mm512_setzero_ps();
    WBlocks<NW> wb(w, ldw, k);
    const uint16_t* p[NW];
    for (int64_t b = 0; b < wb.full; ++b) {
      for (int j = 0; j < NW; ++j) p[j] = wb.row[j] + b * kBlock;
      block_512<NX, NW>(acc, xs + b * kBlock, ldx, p);
    }
    if (wb.partial()) {
      for (int j = 0; j < NW; ++j) p[j] = wb.pad[j];
      block_512<NX, NW>(acc, xs + wb.full * kBlock, ldx, p);
    }
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) _mm512_store_ps(lanes[i][j], acc[i][j]);
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) y[i * ldy + j] = finish(lanes[i][j], bias, r0 + j);
}

// ---- AVX2 emulation (16 lanes = two registers) ----------------------------------------------
template <int NX, int NW>
SR3D_T2 SR3D_AINLINE void block_avx2(__m256 (&acc)[NX][NW][2], const float* xs, int64_t ldx,
                                     const uint16_t* const* wb) {
  const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int h = 0; h < 2; ++h) {
    __m256 wo[NW], we[NW];
    for (int j = 0; j < NW; ++j) {
      const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[j] + 16 * h));
      wo[j] = _mm256_castsi256_ps(_mm256_and_si256(d, hi_mask));
      we[j] = _mm256_castsi256_ps(_mm256_slli_epi32(d, 16));
    }
    for (int i = 0; i < NX; ++i) {
      const __m256 xo = _mm256_loadu_ps(xs + i * ldx + 8 * h);
      const __m256 xe = _mm256_loadu_ps(xs + i * ldx + 16 + 8 * h);
      for (int j = 0; j < NW; ++j)
        acc[i][j][h] = _mm256_fmadd_ps(xe, we[j], _mm256_fmadd_ps(xo, wo[j], acc[i][j][h]));
    }
  }
}

template <int NX, int NW>
SR3D_T2 void tile_avx2(const float* xs, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t k,
                       const float* bias, int64_t r0, float* y, int64_t ldy) {
  alignas(32) float lanes[NX][NW][16];
  {
    FlushToZero ftz;
    __m256 acc[NX][NW][2];
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    WBlocks<NW> wb(w, ldw, k);
    const uint16_t* p[NW];
    for (int64_t b = 0; b < wb.full; ++b) {
      for (int j = 0; j < NW; ++j) p[j] = wb.row[j] + b * kBlock;
      block_avx2<NX, NW>(acc, xs + b * kBlock, ldx, p);
    }
    if (wb.partial()) {
      for (int j = 0; j < NW; ++j) p[j] = wb.pad[j];
      block_avx2<NX, NW>(acc, xs + wb.full * kBlock, ldx, p);
    }
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) {
        _mm256_store_ps(lanes[i][j], acc[i][j][0]);
        _mm256_store_ps(lanes[i][j] + 8, acc[i][j][1]);
      }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) y[i * ldy + j] = finish(lanes[i][j], bias, r0 + j);
}
#endif  // SR3D_AB16_X86

// 3: AVX-512 BF16 (+F, VL, BW, DQ), 2: AVX-512F (+VL), 1: AVX2 + FMA, 0: portable.
// cpu::x86_isa() (simd.h: the CPU and SR3D_CPU_ISA's cap) decides the base; BF16 on top of its
// AVX-512. set_ab16_isa (tests) overrides it.
int g_isa_override = -1;
int best_isa() {
  static const int isa = [] {
    const int base = x86_isa();
#ifdef SR3D_AB16_X86
    __builtin_cpu_init();
    if (base == 2 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bf16"))
      return 3;
#endif
    return base;
  }();
  return isa;
}
int ab16_isa() { return g_isa_override >= 0 ? std::min(g_isa_override, best_isa()) : best_isa(); }

template <int NX, int NW>
void tile_isa(int isa, const void* xs, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t k,
              const float* bias, int64_t r0, float* y, int64_t ldy) {
#ifdef SR3D_AB16_X86
  const float* xf = static_cast<const float*>(xs);
  switch (isa) {
    case 3:
      return tile_bf16<NX, NW, NX == 1>(static_cast<const uint16_t*>(xs), ldx, w, ldw, k, 0,
                                        padded_cols(k) / kBlock, nullptr, bias, r0, y, ldy);
    case 2: return tile_512<NX, NW>(xf, ldx, w, ldw, k, bias, r0, y, ldy);
    case 1: return tile_avx2<NX, NW>(xf, ldx, w, ldw, k, bias, r0, y, ldy);
    default: break;
  }
#endif
  (void)isa;
  tile_portable<NX, NW>(static_cast<const float*>(xs), ldx, w, ldw, k, bias, r0, y, ldy);
}

// All n x rows against weight rows [r0, r1): NW-row groups (their weights stay in L1 while the
// x block streams past), NX-row x tiles, then single x rows and single weight rows.
template <int NX, int NW>
void tiles(int isa, const void* xs, int64_t esz, int64_t n, int64_t kp, const uint16_t* w,
           int64_t k, int64_t r0, int64_t r1, const float* bias, float* y, int64_t ldy) {
  auto xrow = [&](int64_t i) { return static_cast<const char*>(xs) + i * kp * esz; };
  int64_t r = r0;
  for (; r + NW <= r1; r += NW) {
    int64_t i = 0;
    for (; i + NX <= n; i += NX)
      tile_isa<NX, NW>(isa, xrow(i), kp, w + r * k, k, k, bias, r, y + i * ldy + r, ldy);
    for (; i < n; ++i)
      tile_isa<1, NW>(isa, xrow(i), kp, w + r * k, k, k, bias, r, y + i * ldy + r, ldy);
  }
  for (; r < r1; ++r) {
    int64_t i = 0;
    for (; i + NX <= n; i += NX)
      tile_isa<NX, 1>(isa, xrow(i), kp, w + r * k, k, k, bias, r, y + i * ldy + r, ldy);
    for (; i < n; ++i)
      tile_isa<1, 1>(isa, xrow(i), kp, w + r * k, k, k, bias, r, y + i * ldy + r, ldy);
  }
}

// Rows [r0, r1) of y (n x w.rows) from xs (the ISA's x format, kp-element rows). GEMMs run in
// blocks of x rows that stay in L2 (~256 KiB) while the chunk's weight rows pass once.
void rows_ab16(int isa, const void* xs, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
               const float* bias, float* y) {
  const int64_t k = w.cols, kp = padded_cols(k), esz = isa == 3 ? 2 : 4;
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);
  const int64_t nb = std::min(n, std::max<int64_t>(8, (256 << 10) / (esz * kp)) & ~int64_t{7});
  for (int64_t i0 = 0; i0 < n; i0 += nb) {
    const int64_t cnt = std::min(nb, n - i0);
    const void* xb = static_cast<const char*>(xs) + i0 * kp * esz;
    float* yb = y + i0 * w.rows;
    // Registers: vdpbf16ps 6 x 4 (24 of 32 zmm accumulate; 10 loads per 24 vdpbf16ps and a
    // pass over the x block per 4 weight rows: ~20% faster here than 8 x 3, 3 x 8 spills),
    // AVX-512F 4 x 3 (12 + 6 widened weights), AVX2 2 x 2 (8 of 16 ymm), decode 1 x 4 rows
    // (1 x 2 on AVX2).
    if (cnt == 1) {
      if (isa == 1) tiles<1, 2>(isa, xb, esz, cnt, kp, wd, k, r0, r1, bias, yb, w.rows);
      else tiles<1, 4>(isa, xb, esz, cnt, kp, wd, k, r0, r1, bias, yb, w.rows);
    } else if (isa == 3) {
#ifdef SR3D_AB16_X86
      if (kp > 2 * kKChunk * kBlock) {
        tiles_bf16_chunked<6, 4>(static_cast<const uint16_t*>(xb), cnt, kp, wd, k, r0, r1, bias,
                                 yb, w.rows);
        continue;
      }
#endif
      tiles<6, 4>(isa, xb, esz, cnt, kp, wd, k, r0, r1, bias, yb, w.rows);
    } else if (isa == 2) {
      tiles<4, 3>(isa, xb, esz, cnt, kp, wd, k, r0, r1, bias, yb, w.rows);
    } else {
      tiles<2, 2>(isa, xb, esz, cnt, kp, wd, k, r0, r1, bias, yb, w.rows);
    }
  }
}

void ab16_check(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                float* const* ys, int count) {
  need_positive(count, "count (linears sharing x)");
  need_positive(n, "n (input rows)");
  need_ptr(x, "x");
  need_ptr(ws, "ws");
  need_ptr(biases, "biases");
  need_ptr(ys, "ys");
  for (int i = 0; i < count; ++i) {
    const WeightRef& w = ws[i];
    const std::string at = "ws[" + num(i) + "]";
    if (w.type != WType::kBF16)
      throw_invalid_argument(
          "bfloat16 weights (the bf16-activation mode; run other dtypes with linear_multi_fast)",
          at + " dtype", wtype_name(w.type));
    need_positive(w.rows, (at + " rows (out features)").c_str());
    need_positive(w.cols, (at + " cols (in features)").c_str());
    if (w.cols != ws[0].cols)
      throw_invalid_argument("the cols of ws[0] (" + num(ws[0].cols) + "; the linears share x)",
                             at + " cols", num(w.cols));
    need_ptr(w.data, (at + " data").c_str());
    need_ptr(ys[i], ("ys[" + num(i) + "]").c_str());
  }
}

// Per-thread scratch, 64-byte aligned.
struct Scratch {
  std::vector<float> v;
  void* get(int64_t bytes) {
    const size_t n = static_cast<size_t>((bytes + 3) / 4) + 16;
    if (v.size() < n) v.resize(n);
    return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  }
};

}  // namespace

int set_ab16_isa(int isa) {
  g_isa_override = isa;
  return ab16_isa();
}

const char* ab16_isa_name() {
  switch (ab16_isa()) {
    case 3: return "avx512bf16";
    case 2: return "avx512f";
    case 1: return "avx2";
    default: return "portable";
  }
}

void linear_ab16_reference(const float* x, int64_t n, const WeightRef& w, const float* bias,
                           float* y) {
  ab16_check(x, n, &w, &bias, &y, 1);
  const int64_t k = w.cols, kp = padded_cols(k);
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);
  auto xv = [&](int64_t i, int64_t j) { return j < k ? bf16_to_float(to_bf16(x[i * k + j])) : 0.f; };
  auto wv = [&](int64_t r, int64_t j) { return j < k ? bf16_to_float(wd[r * k + j]) : 0.f; };
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < w.rows; ++r) {
      float a[16] = {};
      for (int64_t b = 0; b < kp; b += kBlock)
        for (int l = 0; l < 16; ++l) {
          const int64_t j = b + 2 * l;
          a[l] = dp_step(a[l], xv(i, j + 1), wv(r, j + 1));
          a[l] = dp_step(a[l], xv(i, j), wv(r, j));
        }
      y[i * w.rows + r] = finish(a, bias, r);
    }
}

void linear_ab16_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                      float* const* ys, int count) {
  ab16_check(x, n, ws, biases, ys, count);
  const int isa = ab16_isa();
  const int64_t k = ws[0].cols, kp = padded_cols(k);
  thread_local Scratch xbuf;
  void* xs = xbuf.get(n * kp * (isa == 3 ? 2 : 4));
  // Rows of x in parallel for GEMMs (128 x 4864 is ~0.6 M conversions).
  parallel_for(n, static_cast<int>(std::min<int64_t>(cpu_threads(), n * k >> 14) + 1),
               [&](int, int64_t b, int64_t e) {
                 for (int64_t i = b; i < e; ++i) {
                   if (isa == 3)
                     make_x_bf16_row(x + i * k, k, static_cast<uint16_t*>(xs) + i * kp);
                   else
                     make_x_split_row(x + i * k, k, static_cast<float*>(xs) + i * kp);
                 }
               });
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += ws[i].rows;
  parallel_for(total, linear_chunk_count(n, total, 2 * total * k, n * total * k), [&](int, int64_t b, int64_t e) {
    for_rows_in(ws, count, b, e, [&](int i, int64_t lo, int64_t hi) {
      rows_ab16(isa, xs, n, ws[i], lo, hi, biases[i], ys[i]);
    });
  });
}

}  // namespace cpu
}  // namespace sr3d
