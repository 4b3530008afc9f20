// CPU int4 / int8 Linear with int8 activations (linear.h states the arithmetic every path
// performs): x is quantized per 32-input block as llama.cpp's Q8_0, each block's dot product
// with the weights is an exact int32, and the float steps are one fixed fma chain per output.
// Integer sums are exact in any order, so the kernels may sum in whatever order their
// instructions like: AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products into 16 int32 per
// instruction), AVX2 (vpmaddubsw / vpmaddwd), aarch64 SDOT and the portable loops all give the
// reference's bits.
//
// Where the time goes (one output row, k inputs; Zen4 runs a zmm op per cycle per port pair):
//   - decode GEMV: the weights stream once from memory (int4 k/2 bytes, int8 k bytes), so it
//     is bandwidth-bound if the ALU keeps up. A 64-byte int4 load is 128 weights: and, shift,
//     and, two vpdpbusd (lanes = 4 blocks x 4 partials of one row), then 16 rows' partials are
//     transposed and added once (44 ops per 16 x 128 weights): ~10 ops per 128 weights, against
//     ~24 for the exact path's 8 shifts + 8 vpermps + 8 vfmadd per 128 (16 MACs per FMA).
//   - prefill GEMM: 16 rows are repacked per call to [k/4][16 rows][4 bytes] (int4 unpacked to
//     bytes), so one vpdpbusd with x's 4 bytes as an embedded broadcast does 64 MACs with the
//     lanes being output rows (no reduction). Per 32-input block and token: 8 vpdpbusd and ~6
//     ops to apply the zero point and the scales (mullo, cvt, mul, fma, 2 broadcasts), i.e.
//     ~35 MACs per instruction against the exact path's 16; the 16 x k repack (one byte per
//     weight written, once per call) is amortized over all n tokens.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../linear.h"
#include "linear_rows.h"
#include "simd.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define SR3D_A8_X86 1
#endif
#if defined(__aarch64__) && defined(__GNUC__) && defined(__linux__)
#include <arm_neon.h>
#include <sys/auxv.h>
#define SR3D_A8_ARM 1
#endif
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sr3d {
namespace cpu {
namespace {

constexpr int64_t kBlock = 32;  // inputs per activation block (llama.cpp's QK8_0)

// One input row quantized, in the kernels' "stream" order: per 32-input block, int8 weights
// keep stored order; int4 puts the block's 16 even stored columns first, then the 16 odd ones
// (the low and high nibbles of its 16 bytes). Padded with zero blocks to a multiple of 4
// blocks (128 inputs), which the AVX-512 GEMV reads as one chunk.
struct XQ {
  std::vector<int8_t> q;    // n x kp
  std::vector<float> d;     // n x nbp, the block scales
  std::vector<int32_t> sx;  // n x nbp, sum of the block's xq
  int64_t kp = 0, nbp = 0;
  const int8_t* row(int64_t i) const { return q.data() + i * kp; }
  const float* dr(int64_t i) const { return d.data() + i * nbp; }
  const int32_t* sr(int64_t i) const { return sx.data() + i * nbp; }
};

// The block quantization of linear.h, on 32 values in stored order.
inline float quantize_block(const float* v, int8_t* out) {
  float amax = 0.f;
  for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(v[j]));
  const float d = amax / 127.f;
  for (int j = 0; j < kBlock; ++j) {
    float r = d == 0.f ? 0.f : std::round(v[j] / d);
    r = std::min(127.f, std::max(-127.f, r));
    out[j] = static_cast<int8_t>(r);
  }
  return d;
}

// ---- portable (plain loops; GCC vectorizes the integer dots) -------------------------------
// Block b's exact dot of row r (before the zero-point term) with the stream-ordered xq.
inline int32_t dot_block(const WeightRef& w, const uint8_t* qrow, const int8_t* xs, int64_t b) {
  int32_t s = 0;
  if (w.type == WType::kQ4) {
    const uint8_t* q = qrow + b * (kBlock / 2);
    const int8_t* xb = xs + b * kBlock;
    for (int j = 0; j < 16; ++j) s += (q[j] & 15) * xb[j] + (q[j] >> 4) * xb[16 + j];
  } else {
    const uint8_t* q = qrow + b * kBlock;
    const int8_t* xb = xs + b * kBlock;
    for (int j = 0; j < kBlock; ++j) s += q[j] * xb[j];
  }
  return s;
}

void rows_portable(const XQ& xq, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
                   const float* bias, float* y) {
  const int64_t k = w.cols, nb = k / kBlock, ng = k / w.group, rb = quant_row_bytes(w);
  const int64_t bpg = w.group / kBlock;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* qrow = static_cast<const uint8_t*>(w.data) + r * rb;
    for (int64_t i = 0; i < n; ++i) {
      const int8_t* xs = xq.row(i);
      const float* d = xq.dr(i);
      const int32_t* sx = xq.sr(i);
      float t = 0.f;
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t g = r * ng + b / bpg;
        const int32_t D = dot_block(w, qrow, xs, b) - static_cast<int32_t>(w.zeros[g]) * sx[b];
        t = std::fma(static_cast<float>(D), w.scales[g] * d[b], t);
      }
      y[i * w.rows + r] = bias ? t + bias[r] : t;
    }
  }
}

#ifdef SR3D_A8_X86
#define SR3D_TVNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define SR3D_A8INLINE inline __attribute__((always_inline))

// 16 x 16 dwords transposed in registers (r[i] lane c -> r[c] lane i): 64 shuffles.
SR3D_TVNNI SR3D_A8INLINE void transpose16(__m512i* r) {
  __m512i t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // u[4k + j], 128-bit lane L: rows 4k..4k+3 of column 4L + j
    u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i A = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), B = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
    const __m512i C = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE), D = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
    r[j] = _mm512_shuffle_i32x4(A, B, 0x88);
    r[4 + j] = _mm512_shuffle_i32x4(A, B, 0xDD);
    r[8 + j] = _mm512_shuffle_i32x4(C, D, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(C, D, 0xDD);
  }
}

// 16 rows' s and -z per group, [group][16] at sv / nzv (rows past r1 - 1 repeat the last one;
// their lanes are computed and never stored): 16 groups at a time through transpose16.
SR3D_TVNNI void tile_scales_512(const WeightRef& w, int64_t r, int64_t r1, float* sv, int32_t* nzv) {
  const int64_t ng = w.cols / w.group;
  for (int64_t g0 = 0; g0 < ng; g0 += 16) {
    const int cnt = static_cast<int>(std::min<int64_t>(16, ng - g0));
    const __mmask16 m = static_cast<__mmask16>(cnt == 16 ? 0xFFFF : (1u << cnt) - 1);
    __m512i a[16], z[16];
    for (int i = 0; i < 16; ++i) {
      const int64_t rr = std::min(r + i, r1 - 1);
      a[i] = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, w.scales + rr * ng + g0));
      z[i] = _mm512_sub_epi32(_mm512_setzero_si512(),
                              _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, w.zeros + rr * ng + g0)));
    }
    transpose16(a);
    transpose16(z);
    for (int j = 0; j < cnt; ++j) {
      _mm512_store_si512(sv + (g0 + j) * 16, a[j]);
      _mm512_store_si512(nzv + (g0 + j) * 16, z[j]);
    }
  }
}

// Decode: 16 rows [r, r + 16) clipped to r1. Per 128-input chunk each row gives one zmm of
// 4 blocks x 4 partial int32 (128-bit lane L = block L); 16 of them are transposed and added
// into 4 zmm of 16 rows (one per block).
template <bool Q4>
SR3D_TVNNI void gemv16_vnni(const XQ& xq, const WeightRef& w, int64_t r, int64_t r1,
                            const float* sv, const int32_t* nzv, const float* bias, float* y) {
  const int64_t k = w.cols, nb = k / kBlock, rb = quant_row_bytes(w), bpg = w.group / kBlock;
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  const int8_t* xs = xq.row(0);
  const float* d = xq.dr(0);
  const int32_t* sx = xq.sr(0);
  const uint8_t* rows[16];
  for (int i = 0; i < 16; ++i) rows[i] = q + std::min(r + i, r1 - 1) * rb;
  const __m512i m4 = _mm512_set1_epi8(15);
  const int64_t pf = 16 * rb;  // prefetches past the matrix are hints: they never fault
  __m512 t = _mm512_setzero_ps();
  for (int64_t b0 = 0; b0 < nb; b0 += 4) {
    const int nblk = static_cast<int>(std::min<int64_t>(4, nb - b0));
    const __m512i X0 = _mm512_loadu_si512(xs + b0 * kBlock);
    const __m512i X1 = _mm512_loadu_si512(xs + b0 * kBlock + 64);
    __m512i P[16];
    // 16 rows stream side by side (more than the hardware prefetchers follow): the same bytes of
    // the next 16 rows are fetched while these are summed (as linear_q.cc's GEMV does).
    for (int i = 0; i < 16; ++i)
      _mm_prefetch(reinterpret_cast<const char*>(rows[i] + pf + b0 * (Q4 ? 16 : 32)), _MM_HINT_T0);
    if (!Q4)
      for (int i = 0; i < 16; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(rows[i] + pf + b0 * 32) + 64, _MM_HINT_T0);
    if (Q4) {
      // X0 = [b0 even | b0 odd | b1 even | b1 odd], X1 likewise for b2, b3.
      const __m512i xe = _mm512_shuffle_i32x4(X0, X1, 0x88), xo = _mm512_shuffle_i32x4(X0, X1, 0xDD);
      const __mmask64 mk = nblk == 4 ? ~__mmask64{0} : (__mmask64{1} << (16 * nblk)) - 1;
      for (int i = 0; i < 16; ++i) {
        const __m512i wb = _mm512_maskz_loadu_epi8(mk, rows[i] + b0 * 16);
        const __m512i lo = _mm512_and_si512(wb, m4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(wb, 4), m4);
        P[i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xe), hi, xo);
      }
    } else {
      const __mmask64 m0 = nblk >= 2 ? ~__mmask64{0} : (__mmask64{1} << 32) - 1;
      const __mmask64 m1 = nblk == 4 ? ~__mmask64{0} : nblk == 3 ? (__mmask64{1} << 32) - 1 : 0;
      for (int i = 0; i < 16; ++i) {
        const uint8_t* p = rows[i] + b0 * kBlock;
        const __m512i A = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_maskz_loadu_epi8(m0, p), X0);
        const __m512i B = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_maskz_loadu_epi8(m1, p + 64), X1);
        // A's lanes: b0 b0 b1 b1; B's: b2 b2 b3 b3 -> block L in lane L
        P[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(A, B, 0x88), _mm512_shuffle_i32x4(A, B, 0xDD));
      }
    }
    __m512i U[8], W[4], V[4];
    for (int m = 0; m < 8; ++m)
      U[m] = _mm512_add_epi32(_mm512_unpacklo_epi32(P[2 * m], P[2 * m + 1]),
                              _mm512_unpackhi_epi32(P[2 * m], P[2 * m + 1]));
    for (int m = 0; m < 4; ++m)  // lane L of W[m]: rows 4m..4m+3 of block L
      W[m] = _mm512_add_epi32(_mm512_unpacklo_epi64(U[2 * m], U[2 * m + 1]),
                              _mm512_unpackhi_epi64(U[2 * m], U[2 * m + 1]));
    const __m512i T0 = _mm512_shuffle_i32x4(W[0], W[1], 0x44), T1 = _mm512_shuffle_i32x4(W[2], W[3], 0x44);
    const __m512i T2 = _mm512_shuffle_i32x4(W[0], W[1], 0xEE), T3 = _mm512_shuffle_i32x4(W[2], W[3], 0xEE);
    V[0] = _mm512_shuffle_i32x4(T0, T1, 0x88);
    V[1] = _mm512_shuffle_i32x4(T0, T1, 0xDD);
    V[2] = _mm512_shuffle_i32x4(T2, T3, 0x88);
    V[3] = _mm512_shuffle_i32x4(T2, T3, 0xDD);
    for (int L = 0; L < nblk; ++L) {
      const int64_t b = b0 + L, g = b / bpg;
      const __m512 s = _mm512_load_ps(sv + g * 16);
      const __m512i nz = _mm512_load_si512(nzv + g * 16);
      const __m512i D = _mm512_add_epi32(V[L], _mm512_mullo_epi32(nz, _mm512_set1_epi32(sx[b])));
      t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(D), _mm512_mul_ps(s, _mm512_set1_ps(d[b])), t);
    }
  }
  const __mmask16 mr = static_cast<__mmask16>(r1 - r >= 16 ? 0xFFFF : (1u << (r1 - r)) - 1);
  if (bias) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(mr, bias + r));
  _mm512_mask_storeu_ps(y + r, mr, t);
}

// quantize_block on 32 values, in stream order at out (the same IEEE operations: the division
// is correctly rounded in both, and round-half-away is trunc(a) + (a - trunc(a) >= 0.5), exact).
SR3D_TVNNI float quantize_block_512(const float* v, bool q4, int8_t* out, int32_t* sum) {
  __m512 a = _mm512_loadu_ps(v), b = _mm512_loadu_ps(v + 16);
  if (q4) {  // even stored columns first, then the odd ones
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 e = _mm512_permutex2var_ps(a, ev, b);
    b = _mm512_permutex2var_ps(a, _mm512_add_epi32(ev, _mm512_set1_epi32(1)), b);
    a = e;
  }
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  const float d = amax / 127.f;
  __m512i q[2];
  const __m512 h = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.f), lim = _mm512_set1_ps(127.f);
  for (int p = 0; p < 2; ++p) {
    const __m512 x = p ? b : a;
    if (d == 0.f) {
      q[p] = _mm512_setzero_si512();
      continue;
    }
    const __m512 y = _mm512_div_ps(x, _mm512_set1_ps(d));
    const __m512 m = _mm512_abs_ps(y);
    const __m512 tr = _mm512_roundscale_ps(m, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(m, tr), h, _CMP_GE_OQ);
    const __m512 r = _mm512_min_ps(_mm512_mask_add_ps(tr, up, tr, one), lim);
    const __m512i ri = _mm512_cvttps_epi32(r);
    const __mmask16 neg = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_LT_OQ);
    q[p] = _mm512_mask_sub_epi32(ri, neg, _mm512_setzero_si512(), ri);
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(q[0]));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm512_cvtepi32_epi8(q[1]));
  *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
  return d;
}

// Rows [r, r + 16) (clipped to r1) in stream order as [k/4][16 rows][4 bytes] u8 at out: each
// 64-byte line is one vpdpbusd operand (dword u of 16 rows).
SR3D_TVNNI void repack16(const WeightRef& w, int64_t r, int64_t r1, uint8_t* out) {
  const int64_t k = w.cols, rb = quant_row_bytes(w);
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  const __m128i m4 = _mm_set1_epi8(15);
  for (int i = 0; i < 16; ++i) {
    const uint8_t* src = q + std::min(r + i, r1 - 1) * rb;
    uint8_t* o = out + i * 4;
    if (w.type == WType::kQ8) {
      for (int64_t u = 0; u < k / 4; ++u) std::memcpy(o + u * 64, src + 4 * u, 4);
      continue;
    }
    for (int64_t b = 0; b < k / kBlock; ++b) {  // 16 bytes: low nibbles, then high nibbles
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + b * 16));
      const __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
      uint8_t* ob = o + b * 8 * 64;
      _mm_storeu_si32(ob, lo);
      _mm_storeu_si32(ob + 64, _mm_srli_si128(lo, 4));
      _mm_storeu_si32(ob + 128, _mm_srli_si128(lo, 8));
      _mm_storeu_si32(ob + 192, _mm_srli_si128(lo, 12));
      _mm_storeu_si32(ob + 256, hi);
      _mm_storeu_si32(ob + 320, _mm_srli_si128(hi, 4));
      _mm_storeu_si32(ob + 384, _mm_srli_si128(hi, 8));
      _mm_storeu_si32(ob + 448, _mm_srli_si128(hi, 12));
    }
  }
}

// NX tokens x 16 repacked rows. sv / nzv: per group, the 16 rows' s and -z.
template <int NX>
SR3D_TVNNI void gemm_tile_vnni(const XQ& xq, int64_t i0, const WeightRef& w, const uint8_t* rp,
                               const float* sv, const int32_t* nzv, int64_t r, int64_t r1,
                               const float* bias, float* y) {
  const int64_t nb = w.cols / kBlock, bpg = w.group / kBlock;
  __m512 t[NX];
  for (int i = 0; i < NX; ++i) t[i] = _mm512_setzero_ps();
  const int32_t* xd[NX];
  const float* dd[NX];
  const int32_t* ss[NX];
  for (int i = 0; i < NX; ++i) {
    xd[i] = reinterpret_cast<const int32_t*>(xq.row(i0 + i));
    dd[i] = xq.dr(i0 + i);
    ss[i] = xq.sr(i0 + i);
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / bpg;
    const __m512 s = _mm512_load_ps(sv + g * 16);
    const __m512i nz = _mm512_load_si512(nzv + g * 16);
    __m512i acc[NX];
    for (int i = 0; i < NX; ++i) acc[i] = _mm512_mullo_epi32(nz, _mm512_set1_epi32(ss[i][b]));
    for (int u = 0; u < 8; ++u) {
      const __m512i wv = _mm512_load_si512(rp + (b * 8 + u) * 64);
      for (int i = 0; i < NX; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], wv, _mm512_set1_epi32(xd[i][b * 8 + u]));
    }
    for (int i = 0; i < NX; ++i)
      t[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), _mm512_mul_ps(s, _mm512_set1_ps(dd[i][b])), t[i]);
  }
  const __mmask16 mr = static_cast<__mmask16>(r1 - r >= 16 ? 0xFFFF : (1u << (r1 - r)) - 1);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(mr, bias + r) : _mm512_setzero_ps();
  for (int i = 0; i < NX; ++i) {
    const __m512 o = bias ? _mm512_add_ps(t[i], bv) : t[i];
    _mm512_mask_storeu_ps(y + (i0 + i) * w.rows + r, mr, o);
  }
}

// Per-thread byte scratch, 64-byte aligned.
struct Bytes {
  std::vector<uint8_t> v;
  uint8_t* get(size_t n) {
    if (v.size() < n + 64) v.resize(n + 64);
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  }
};

SR3D_TVNNI void rows_vnni(const XQ& xq, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
                          const float* bias, float* y) {
  const bool q4 = w.type == WType::kQ4;
  const int64_t k = w.cols, ng = k / w.group;
  thread_local Bytes buf;
  uint8_t* rp = buf.get(static_cast<size_t>((n > 1 ? 16 * k : 0) + ng * 16 * 8));
  float* sv = reinterpret_cast<float*>(rp + (n > 1 ? 16 * k : 0));
  int32_t* nzv = reinterpret_cast<int32_t*>(sv + ng * 16);
  for (int64_t r = r0; r < r1; r += 16) {
    const int64_t re = std::min(r + 16, r1);
    tile_scales_512(w, r, re, sv, nzv);
    if (n == 1) {
      if (q4) gemv16_vnni<true>(xq, w, r, re, sv, nzv, bias, y);
      else gemv16_vnni<false>(xq, w, r, re, sv, nzv, bias, y);
      continue;
    }
    repack16(w, r, re, rp);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) gemm_tile_vnni<8>(xq, i, w, rp, sv, nzv, r, re, bias, y);
    for (; i + 4 <= n; i += 4) gemm_tile_vnni<4>(xq, i, w, rp, sv, nzv, r, re, bias, y);
    for (; i < n; ++i) gemm_tile_vnni<1>(xq, i, w, rp, sv, nzv, r, re, bias, y);
  }
}

// ---- AVX2 (no VNNI): vpmaddubsw / vpmaddwd ------------------------------------------------------
// int4: u8 weights <= 15 times s8 xq, pairs summed by vpmaddubsw: |15 * 127 * 2| < 32767, no
// saturation. int8: u8 * s8 pairs reach 2 * 255 * 127 > 32767, so both are widened to int16 and
// vpmaddwd sums the pairs in int32 (exact). Lanes = 8 rows after an hadd tree per block.
#define SR3D_TA2 __attribute__((target("avx2,fma")))

// 8 rows' partial sums (8 int32 each) -> one int32 per row.
SR3D_TA2 SR3D_A8INLINE __m256i reduce8(const __m256i* P) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(P[0], P[1]), _mm256_hadd_epi32(P[2], P[3]));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(P[4], P[5]), _mm256_hadd_epi32(P[6], P[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// Tokens [i0, i0 + NX) of xq against 8 rows [r, r + 8) clipped to r1: each row's block is
// unpacked once for the NX tokens.
template <bool Q4, int NX>
SR3D_TA2 void tile8_avx2(const XQ& xq, int64_t i0, const WeightRef& w, int64_t r, int64_t r1,
                         const float* bias, float* y) {
  const int64_t k = w.cols, nb = k / kBlock, ng = k / w.group, rb = quant_row_bytes(w), bpg = w.group / kBlock;
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  const uint8_t* rows[8];
  alignas(32) int32_t ri[8];
  for (int j = 0; j < 8; ++j) {
    const int64_t rr = std::min(r + j, r1 - 1);
    rows[j] = q + rr * rb;
    ri[j] = static_cast<int32_t>(rr);
  }
  const __m128i m4 = _mm_set1_epi8(15);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 t[NX];
  for (int i = 0; i < NX; ++i) t[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / bpg;
    __m256i P[NX][8];
    for (int j = 0; j < 8; ++j) {
      if (Q4) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + b * 16));
        const __m256i wv = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
        for (int i = 0; i < NX; ++i) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq.row(i0 + i) + b * kBlock));
          P[i][j] = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
        }
      } else {
        const __m128i* wp = reinterpret_cast<const __m128i*>(rows[j] + b * kBlock);
        const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(wp)), w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(wp + 1));
        for (int i = 0; i < NX; ++i) {
          const __m128i* xp = reinterpret_cast<const __m128i*>(xq.row(i0 + i) + b * kBlock);
          P[i][j] = _mm256_add_epi32(_mm256_madd_epi16(w0, _mm256_cvtepi8_epi16(_mm_loadu_si128(xp))),
                                     _mm256_madd_epi16(w1, _mm256_cvtepi8_epi16(_mm_loadu_si128(xp + 1))));
        }
      }
    }
    alignas(32) float sv[8];
    alignas(32) int32_t zv[8];
    for (int j = 0; j < 8; ++j) {
      sv[j] = w.scales[ri[j] * ng + g];
      zv[j] = w.zeros[ri[j] * ng + g];
    }
    const __m256 s = _mm256_load_ps(sv);
    const __m256i z = _mm256_load_si256(reinterpret_cast<const __m256i*>(zv));
    for (int i = 0; i < NX; ++i) {
      const __m256i D = _mm256_sub_epi32(reduce8(P[i]), _mm256_mullo_epi32(z, _mm256_set1_epi32(xq.sr(i0 + i)[b])));
      t[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(D), _mm256_mul_ps(s, _mm256_set1_ps(xq.dr(i0 + i)[b])), t[i]);
    }
  }
  for (int i = 0; i < NX; ++i) {
    alignas(32) float o[8];
    _mm256_store_ps(o, t[i]);
    for (int j = 0; j < 8 && r + j < r1; ++j) y[(i0 + i) * w.rows + r + j] = bias ? o[j] + bias[r + j] : o[j];
  }
}

template <bool Q4>
void rows_avx2_t(const XQ& xq, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
                 const float* bias, float* y) {
  for (int64_t r = r0; r < r1; r += 8) {
    const int64_t re = std::min(r + 8, r1);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) tile8_avx2<Q4, 4>(xq, i, w, r, re, bias, y);
    for (; i < n; ++i) tile8_avx2<Q4, 1>(xq, i, w, r, re, bias, y);
  }
}

void rows_avx2(const XQ& xq, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
               const float* bias, float* y) {
  if (w.type == WType::kQ4) rows_avx2_t<true>(xq, n, w, r0, r1, bias, y);
  else rows_avx2_t<false>(xq, n, w, r0, r1, bias, y);
}
#endif  // SR3D_A8_X86

void make_xq(int isa, const float* x, int64_t n, const WeightRef& w, XQ* o) {
  const int64_t k = w.cols, nb = k / kBlock;
  o->nbp = (nb + 3) & ~int64_t{3};
  o->kp = o->nbp * kBlock;
  o->q.assign(static_cast<size_t>(n * o->kp), 0);
  o->d.assign(static_cast<size_t>(n * o->nbp), 0.f);
  o->sx.assign(static_cast<size_t>(n * o->nbp), 0);
  const bool q4 = w.type == WType::kQ4;
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    for (int64_t b = 0; b < nb; ++b) {
      float v[kBlock];
      int8_t qs[kBlock];
      for (int j = 0; j < kBlock; ++j) {
        const int64_t c = b * kBlock + j;
        v[j] = xi[w.perm ? w.perm[c] : c];
      }
      int8_t* dst = o->q.data() + i * o->kp + b * kBlock;
#ifdef SR3D_A8_X86
      if (isa == 2) {
        o->d[i * o->nbp + b] = quantize_block_512(v, q4, dst, &o->sx[i * o->nbp + b]);
        continue;
      }
#endif
      (void)isa;
      o->d[i * o->nbp + b] = quantize_block(v, qs);
      int32_t s = 0;
      for (int j = 0; j < kBlock; ++j) {
        s += qs[j];
        // int4: stored column j -> stream position j/2 (even) or 16 + j/2 (odd)
        dst[q4 ? (j & 1 ? 16 + j / 2 : j / 2) : j] = qs[j];
      }
      o->sx[i * o->nbp + b] = s;
    }
  }
}

#ifdef SR3D_A8_ARM
// ---- aarch64 dot product (SDOT, ARMv8.2 FEAT_DotProd, chosen at run time by HWCAP_ASIMDDP) ------
// SDOT multiplies s8 x s8: int4 weights (0..15) are s8 already; int8 weights go in as q - 128
// (q ^ 0x80) and D gets 128 * sum xq back, still exact. 4 rows at a time; pairwise adds leave one
// int32 per row, and the float steps run on 4 lanes = 4 rows.
#define SR3D_TDOT __attribute__((target("arch=armv8.2-a+dotprod")))

template <bool Q4>
SR3D_TDOT void tile4_dot(const XQ& xq, int64_t i, const WeightRef& w, int64_t r, int64_t r1,
                         const float* bias, float* y) {
  const int64_t k = w.cols, nb = k / kBlock, ng = k / w.group, rb = quant_row_bytes(w), bpg = w.group / kBlock;
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  const int8_t* xs = xq.row(i);
  const float* d = xq.dr(i);
  const int32_t* sx = xq.sr(i);
  const uint8_t* rows[4];
  int64_t ri[4];
  for (int j = 0; j < 4; ++j) {
    ri[j] = std::min(r + j, r1 - 1);
    rows[j] = q + ri[j] * rb;
  }
  const uint8x16_t m4 = vdupq_n_u8(15), flip = vdupq_n_u8(0x80);
  float32x4_t t = vdupq_n_f32(0.f);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / bpg;
    const int8x16_t x0 = vld1q_s8(xs + b * kBlock), x1 = vld1q_s8(xs + b * kBlock + 16);
    int32x4_t P[4];
    for (int j = 0; j < 4; ++j) {
      int8x16_t w0, w1;
      if (Q4) {
        const uint8x16_t v = vld1q_u8(rows[j] + b * 16);
        w0 = vreinterpretq_s8_u8(vandq_u8(v, m4));
        w1 = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
      } else {
        w0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(rows[j] + b * kBlock), flip));
        w1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(rows[j] + b * kBlock + 16), flip));
      }
      P[j] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
    }
    int32x4_t dot = vpaddq_s32(vpaddq_s32(P[0], P[1]), vpaddq_s32(P[2], P[3]));
    float sv[4];
    int32_t zv[4];
    for (int j = 0; j < 4; ++j) {
      sv[j] = w.scales[ri[j] * ng + g];
      zv[j] = (Q4 ? 0 : 128) - static_cast<int32_t>(w.zeros[ri[j] * ng + g]);
    }
    dot = vmlaq_s32(dot, vld1q_s32(zv), vdupq_n_s32(sx[b]));  // D = dot (+128 sx) - z sx
    t = vfmaq_f32(t, vcvtq_f32_s32(dot), vmulq_f32(vld1q_f32(sv), vdupq_n_f32(d[b])));
  }
  float o[4];
  vst1q_f32(o, t);
  for (int j = 0; j < 4 && r + j < r1; ++j) y[i * w.rows + r + j] = bias ? o[j] + bias[r + j] : o[j];
}

void rows_dot(const XQ& xq, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
              const float* bias, float* y) {
  for (int64_t r = r0; r < r1; r += 4)
    for (int64_t i = 0; i < n; ++i) {
      if (w.type == WType::kQ4) tile4_dot<true>(xq, i, w, r, std::min(r + 4, r1), bias, y);
      else tile4_dot<false>(xq, i, w, r, std::min(r + 4, r1), bias, y);
    }
}
#endif  // SR3D_A8_ARM

// 2: AVX-512 VNNI (+BW, VL) or, on aarch64, SDOT; 1: AVX2; 0: portable. On x86 cpu::x86_isa()
// (simd.h: the CPU and SR3D_CPU_ISA's cap) decides the base, VNNI on top of its AVX-512;
// set_a8_isa (tests) overrides it.
int g_a8_override = -1;
int a8_best_isa() {
  static const int isa = [] {
#ifdef SR3D_A8_X86
    const int base = x86_isa();
    __builtin_cpu_init();
    if (base == 2 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
      return 2;
    return base >= 1 ? 1 : 0;
#endif
#ifdef SR3D_A8_ARM
    const char* cap = std::getenv("SR3D_CPU_ISA");
    if ((!cap || std::string(cap) != "portable") && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) return 2;
#endif
    return 0;
  }();
  return isa;
}
int a8_isa() { return g_a8_override >= 0 ? std::min(g_a8_override, a8_best_isa()) : a8_best_isa(); }

void rows_a8(int isa, const XQ& xq, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
             const float* bias, float* y) {
#ifdef SR3D_A8_X86
  if (isa == 2) return rows_vnni(xq, n, w, r0, r1, bias, y);
  if (isa == 1) return rows_avx2(xq, n, w, r0, r1, bias, y);
#endif
#ifdef SR3D_A8_ARM
  if (isa == 2) return rows_dot(xq, n, w, r0, r1, bias, y);
#endif
  (void)isa;
  rows_portable(xq, n, w, r0, r1, bias, y);
}

}  // namespace

bool a8_supported(const WeightRef& w) {
  return wtype_quantized(w.type) && w.group > 0 && w.group % kBlock == 0 && w.cols % w.group == 0;
}

int set_a8_isa(int isa) {
  g_a8_override = isa;
  return a8_isa();
}

const char* a8_isa_name() {
  switch (a8_isa()) {
#ifdef SR3D_A8_ARM
    case 2: return "neon-dotprod";
#else
    case 2: return "avx512vnni";
#endif
    case 1: return "avx2";
    default: return "portable";
  }
}

void linear_a8_reference(const float* x, int64_t n, const WeightRef& w, const float* bias,
                         float* y) {
  if (!a8_supported(w)) return linear_fast(x, n, w, bias, y);
  const int64_t k = w.cols, ng = k / w.group, rb = quant_row_bytes(w);
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  std::vector<int8_t> xq(static_cast<size_t>(k));
  std::vector<float> d(static_cast<size_t>(k / kBlock));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < k / kBlock; ++b) {  // the inputs in stored-column order
      float v[kBlock];
      for (int j = 0; j < kBlock; ++j) {
        const int64_t c = b * kBlock + j;
        v[j] = x[i * k + (w.perm ? w.perm[c] : c)];
      }
      d[b] = quantize_block(v, xq.data() + b * kBlock);
    }
    for (int64_t r = 0; r < w.rows; ++r) {
      float t = 0.f;
      for (int64_t b = 0; b < k / kBlock; ++b) {
        const int64_t g = r * ng + b * kBlock / w.group;
        int32_t dot = 0, sum = 0;
        for (int64_t c = b * kBlock; c < (b + 1) * kBlock; ++c) {
          const uint8_t byte = q[r * rb + (w.type == WType::kQ4 ? c / 2 : c)];
          const int qv = w.type == WType::kQ4 ? (c % 2 ? byte >> 4 : byte & 15) : byte;
          dot += qv * xq[c];
          sum += xq[c];
        }
        const int32_t D = dot - static_cast<int32_t>(w.zeros[g]) * sum;
        t = std::fma(static_cast<float>(D), w.scales[g] * d[b], t);
      }
      y[i * w.rows + r] = bias ? t + bias[r] : t;
    }
  }
}

void linear_a8_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                    float* const* ys, int count) {
  std::vector<int> a8;
  for (int i = 0; i < count; ++i) {
    if (a8_supported(ws[i])) a8.push_back(i);
    else linear_multi_fast(x, n, &ws[i], &biases[i], &ys[i], 1);  // the exact path
  }
  if (a8.empty()) return;
  const int isa = a8_isa();
  // One quantized x per distinct (type, perm): q/k/v or gate/up share theirs.
  thread_local std::vector<XQ> xbufs;
  if (xbufs.size() < a8.size()) xbufs.resize(a8.size());
  std::vector<const XQ*> xs(a8.size(), nullptr);
  int64_t strips = 0, bytes = 0, total = 0;
  std::vector<int64_t> first(a8.size() + 1, 0);  // first 16-row strip of each weight
  for (size_t a = 0; a < a8.size(); ++a) {
    const WeightRef& w = ws[a8[a]];
    for (size_t b = 0; b < a && !xs[a]; ++b)
      if (ws[a8[b]].type == w.type && ws[a8[b]].perm == w.perm) xs[a] = xs[b];
    if (!xs[a]) {
      make_xq(isa, x, n, w, &xbufs[a]);
      xs[a] = &xbufs[a];
    }
    first[a] = strips;
    strips += (w.rows + 15) / 16;
    total += w.rows;
    bytes += w.rows * (quant_row_bytes(w) + 5 * (w.cols / w.group));
  }
  first[a8.size()] = strips;
  const int64_t k = ws[a8[0]].cols;
  // Chunks as linear_q_fast (linear_rows.h; integer multiply-adds count a quarter); whole
  // 16-row strips.
  parallel_for(strips, linear_chunk_count(n, strips, bytes, n * total * k / 4), [&](int, int64_t b, int64_t e) {
    for (size_t a = 0; a < a8.size(); ++a) {
      const int64_t lo = std::max(b, first[a]) - first[a], hi = std::min(e, first[a + 1]) - first[a];
      if (lo >= hi) continue;
      const WeightRef& w = ws[a8[a]];
      rows_a8(isa, *xs[a], n, w, lo * 16, std::min(hi * 16, w.rows), biases[a8[a]], ys[a8[a]]);
    }
  });
}

}  // namespace cpu

void linear_a8(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
               Impl impl) {
  linear_check(x, n, w, bias, y);
  if (impl == Impl::kReference) return cpu::linear_a8_reference(x, n, w, bias, y);
  if (impl == Impl::kFast) return cpu::linear_a8_fast(x, n, &w, &bias, &y, 1);
  throw_invalid_argument("Impl::kReference or Impl::kFast (int8 activations run on the CPU only)",
                         "impl", impl == Impl::kCuda ? "kCuda" : "unknown");
}

}  // namespace sr3d
