// CPU Linear (GEMV / GEMM): see linear.h for the contract and the numerics of the fast path.
#include "../linear.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "linear_neon.h"
#include "linear_rows.h"
#include "simd.h"
#include "vec8.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif

namespace sr3d {

const char* wtype_name(WType t) {
  switch (t) {
    case WType::kF32: return "float32";
    case WType::kF16: return "float16";
    case WType::kBF16: return "bfloat16";
    case WType::kQ4: return "int4";
    case WType::kQ8: return "int8";
  }
  return "unknown";
}

namespace {

// One stored row of a quantized weight to float32 (see WeightRef): out[perm[j]] =
// s * (q[j] - z) per group, each product rounded once, as lib/quant.ts's dequantize().
SR3D_TARGET_CLONES
void dequant_row(const uint8_t* q, bool q4, const float* sc, const uint8_t* z, int64_t group,
                 int64_t cols, const int32_t* perm, float* out) {
  const int64_t ng = cols / group;
  for (int64_t g = 0; g < ng; ++g) {
    const float s = sc[g];
    const int zi = z[g];
    const int64_t j0 = g * group;
    if (perm) {
      for (int64_t j = j0; j < j0 + group; ++j) {
        const int qv = q4 ? (j & 1 ? q[j >> 1] >> 4 : q[j >> 1] & 15) : q[j];
        out[perm[j]] = s * static_cast<float>(qv - zi);
      }
    } else if (q4) {  // group is even, so a group starts on a byte
      const uint8_t* qb = q + j0 / 2;
      float* o = out + j0;
      for (int64_t j = 0; j < group / 2; ++j) {
        o[2 * j] = s * static_cast<float>(static_cast<int>(qb[j] & 15) - zi);
        o[2 * j + 1] = s * static_cast<float>(static_cast<int>(qb[j] >> 4) - zi);
      }
    } else {
      for (int64_t j = j0; j < j0 + group; ++j) out[j] = s * static_cast<float>(q[j] - zi);
    }
  }
}

// y[i][r] for i < n, r in [0, rows): w points at the first of `rows` weight rows (f32 or
// bf16, ldw elements apart), y at column 0 of those outputs (ldy floats per row).
SR3D_TARGET_CLONES
void linear_block_generic(const float* x, int64_t n, int64_t k, const void* w, bool bf16,
                          int64_t ldw, int64_t rows, const float* bias, float* y, int64_t ldy) {
  const int64_t esz = bf16 ? 2 : 4;
  for (int64_t r = 0; r < rows; r += 2) {
    const int nw = static_cast<int>(std::min<int64_t>(2, rows - r));
    const void* wr = static_cast<const char*>(w) + r * ldw * esz;
    for (int64_t i = 0; i < n; i += 4) {
      const int nx = static_cast<int>(std::min<int64_t>(4, n - i));
      float res[8];
      if (bf16) dot_tile_any<true>(nx, nw, x + i * k, k, wr, ldw, k, res);
      else dot_tile_any<false>(nx, nw, x + i * k, k, wr, ldw, k, res);
      for (int a = 0; a < nx; ++a)
        for (int b = 0; b < nw; ++b) {
          float v = res[a * nw + b];
          if (bias) v += bias[r + b];
          y[(i + a) * ldy + r + b] = v;
        }
    }
  }
}

// ---- decode GEMV (one input row) ------------------------------------------------------------
// For n == 1 the weights stream from DRAM once and nothing is reused, so the loop must keep
// many loads in flight with few instructions per byte. The AVX2 kernel below runs 4 weight
// rows at a time (4 independent add chains), converts bf16 with one vpmovzxwd + shift, and
// software-prefetches the next 4-row tile while the current one is summed (the hardware
// prefetcher alone left it latency bound at ~25% of read bandwidth). Per output it performs
// exactly the arithmetic of dot_tile (8-lane mul-then-add over k in order, the hsum8 tree,
// the scalar tail, the bias), so results are bit-identical to the generic clones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SR3D_HAVE_GEMV_AVX2 1
template <bool BF16>
__attribute__((target("avx2"), always_inline)) inline __m256 gemv_load_w(const void* w, int64_t i) {
  if (BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  return _mm256_loadu_ps(static_cast<const float*>(w) + i);
}

__attribute__((target("avx2"), always_inline)) inline float gemv_hsum(__m256 v) {
  alignas(32) float a[8];
  _mm256_store_ps(a, v);
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

template <bool BF16>
__attribute__((target("avx2"))) void gemv_avx2(const float* x, int64_t k, const void* w,
                                               int64_t rows, const float* bias, float* y) {
  constexpr int64_t esz = BF16 ? 2 : 4;
  const int64_t k8 = k & ~int64_t{7};
  const char* wc = static_cast<const char*>(w);
  auto tail = [&](float s, int64_t r) {
    for (int64_t c = k8; c < k; ++c)
      s += x[c] * (BF16 ? bf16_to_float(static_cast<const uint16_t*>(w)[r * k + c])
                        : static_cast<const float*>(w)[r * k + c]);
    return bias ? s + bias[r] : s;
  };
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const char* w0 = wc + r * k * esz;
    const char* w1 = w0 + k * esz;
    const char* w2 = w1 + k * esz;
    const char* w3 = w2 + k * esz;
    const char* pf = w0 + 4 * k * esz;  // the next tile: 4*8*esz bytes of it per step
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t c = 0; c < k8; c += 8) {
      _mm_prefetch(pf + c * 4 * esz, _MM_HINT_T0);
      if (!BF16) _mm_prefetch(pf + c * 4 * esz + 64, _MM_HINT_T0);
      const __m256 xv = _mm256_loadu_ps(x + c);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(xv, gemv_load_w<BF16>(w0, c)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(xv, gemv_load_w<BF16>(w1, c)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(xv, gemv_load_w<BF16>(w2, c)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(xv, gemv_load_w<BF16>(w3, c)));
    }
    y[r] = tail(gemv_hsum(a0), r);
    y[r + 1] = tail(gemv_hsum(a1), r + 1);
    y[r + 2] = tail(gemv_hsum(a2), r + 2);
    y[r + 3] = tail(gemv_hsum(a3), r + 3);
  }
  for (; r < rows; ++r) {
    const char* w0 = wc + r * k * esz;
    __m256 a0 = _mm256_setzero_ps();
    for (int64_t c = 0; c < k8; c += 8)
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(x + c), gemv_load_w<BF16>(w0, c)));
    y[r] = tail(gemv_hsum(a0), r);
  }
}


// ---- GEMM tiles (n > 1) ------------------------------------------------------------------------
// linear_block_generic's GCC vector code lowers the bf16 -> f32 widening to six shuffle/shift
// instructions per 8 weights, which compete with the multiplies and adds for the vector pipes.
// These kernels widen with one vbroadcasti128 (a load) + one vpshufb that drops each bf16 word
// into the high half of its lane, and use larger register tiles: 4 x 2 with AVX2's 16 vector
// registers, 8 x 3 with AVX-512VL's 32. Per output the arithmetic is dot_tile's exactly (8-lane
// mul-then-add over k in order, the hsum8 tree, the scalar tail, the bias last), so results are
// bit-identical to linear_block_generic and to gemv_avx2. For GEMM-sized n the x block and each
// weight group are first copied to aligned per-thread buffers (linear_block_avx): 1024x1152 ->
// 4304 bf16 on a 2-core EPYC went from ~95 to ~178 GFLOP/s (no-FMA peak ~224).
template <bool BF16>
__attribute__((target("avx2"), always_inline)) inline __m256 tile_load_w(const void* w, int64_t i) {
  if (BF16) {
    const __m256i h = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
    const __m256i idx =
        _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7,  //
                         -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(h, idx));
  }
  return _mm256_loadu_ps(static_cast<const float*>(w) + i);
}

// hsum8's tree on the vector unit: lanes l + (l+4), then (0+4)+(2+6) and (1+5)+(3+7), then
// their sum; the same float additions as hsum8 and gemv_hsum.
__attribute__((target("avx2"), always_inline)) inline float tile_hsum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// One NX x NW tile: y[i][j] = hsum8(acc) + tail (+ bias), like linear_block_generic. Unpacked
// (PACKED false): x rows k floats apart, weight rows ldw elements apart, tails read in place.
// PACKED: x and w were copied by pack_x / pack_w (float32, 64-byte aligned): step s of the tile
// is one contiguous run of NX (NW) 8-float vectors, and the tails follow in their own arrays.
template <int NX, int NW, bool BF16, bool PACKED>
__attribute__((target("avx2"), always_inline)) inline void tile_avx(
    const float* x, int64_t ldx, const float* xt, int64_t ldxt, const void* w, int64_t ldw,
    const void* wt, int64_t ldwt, int64_t k8, int64_t kt, const float* bias, float* y,
    int64_t ldy) {
  __m256 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t c = 0; c < k8; c += 8) {
    __m256 wv[NW];
    for (int j = 0; j < NW; ++j)
      wv[j] = PACKED ? _mm256_load_ps(static_cast<const float*>(w) + c * NW + j * 8)
                     : tile_load_w<BF16>(w, j * ldw + c);
    for (int i = 0; i < NX; ++i) {
      const __m256 xv =
          PACKED ? _mm256_load_ps(x + c * NX + i * 8) : _mm256_loadu_ps(x + i * ldx + c);
      for (int j = 0; j < NW; ++j) acc[i][j] = _mm256_add_ps(acc[i][j], _mm256_mul_ps(xv, wv[j]));
    }
  }
  const float* wf = static_cast<const float*>(wt);
  const uint16_t* wb = static_cast<const uint16_t*>(wt);
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      float s = tile_hsum(acc[i][j]);
      for (int64_t c = 0; c < kt; ++c)
        s += xt[i * ldxt + c] * (BF16 ? bf16_to_float(wb[j * ldwt + c]) : wf[j * ldwt + c]);
      if (bias) s += bias[j];
      y[i * ldy + j] = s;
    }
}

// Per-thread 64-byte aligned float scratch.
struct PackBuf {
  std::vector<float> v;
  float* get(int64_t n) {
    if (v.size() < static_cast<size_t>(n + 16)) v.resize(static_cast<size_t>(n + 16));
    float* p = v.data();
    return p + ((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63) / sizeof(float);
  }
};

// Floats from one packed x tile to the next (64-byte aligned).
template <int NX>
constexpr int64_t x_tile_stride(int64_t k) {
  return (NX * k + 15) & ~int64_t{15};
}

// Copies n x rows (k floats each) as tiles of up to NX rows: per tile the k8 / 8 steps of
// nx vectors, then the nx tails of kt floats. Tile t starts at dst + t * x_tile_stride<NX>(k).
template <int NX>
__attribute__((target("avx2"), always_inline)) inline void pack_x(const float* x, int64_t n,
                                                                  int64_t k, float* dst) {
  const int64_t k8 = k & ~int64_t{7}, kt = k - k8;
  for (int64_t i0 = 0; i0 < n; i0 += NX) {
    const int64_t nx = std::min<int64_t>(NX, n - i0);
    float* d = dst + i0 / NX * x_tile_stride<NX>(k);
    for (int64_t c = 0; c < k8; c += 8)
      for (int64_t i = 0; i < nx; ++i)
        _mm256_store_ps(d + c * nx + i * 8, _mm256_loadu_ps(x + (i0 + i) * k + c));
    for (int64_t i = 0; i < nx; ++i)
      for (int64_t c = 0; c < kt; ++c) d[nx * k8 + i * kt + c] = x[(i0 + i) * k + k8 + c];
  }
}

// Widens nw weight rows to float32 (exact) in the same layout (steps of nw vectors, tails).
template <bool BF16>
__attribute__((target("avx2"), always_inline)) inline void pack_w(const void* w, int64_t ldw,
                                                                  int64_t nw, int64_t k,
                                                                  float* dst) {
  const int64_t k8 = k & ~int64_t{7}, kt = k - k8;
  for (int64_t c = 0; c < k8; c += 8)
    for (int64_t j = 0; j < nw; ++j)
      _mm256_store_ps(dst + c * nw + j * 8, tile_load_w<BF16>(w, j * ldw + c));
  for (int64_t j = 0; j < nw; ++j)
    for (int64_t c = 0; c < kt; ++c)
      dst[nw * k8 + j * kt + c] =
          BF16 ? bf16_to_float(static_cast<const uint16_t*>(w)[j * ldw + k8 + c])
               : static_cast<const float*>(w)[j * ldw + k8 + c];
}

// The tile of nx input rows at x (its first row, or its packed block); see tile_rows_avx.
template <int NX, int NW, bool BF16, bool PACKED>
__attribute__((target("avx2"), always_inline)) inline void tile_at(
    const float* x, int64_t k, const void* w, int64_t ldw, const void* wt, int64_t ldwt,
    int64_t k8, int64_t kt, const float* bias, float* y, int64_t ldy) {
  if constexpr (PACKED)  // a partial last tile was packed with its own row count, NX
    tile_avx<NX, NW, BF16, true>(x, 0, x + NX * k8, kt, w, ldw, wt, ldwt, k8, kt, bias, y, ldy);
  else
    tile_avx<NX, NW, BF16, false>(x, k, x + k8, k, w, ldw, wt, ldwt, k8, kt, bias, y, ldy);
}

// All n input rows against NW weight rows: NX-row tiles, then 4-, 2- and 1-row tiles.
// Unpacked: x and w in place. PACKED: x as pack_x<NX> left it, w as pack_w with nw = NW.
template <int NX, int NW, bool BF16, bool PACKED>
__attribute__((target("avx2"), always_inline)) inline void tile_rows_avx(
    const float* x, int64_t n, int64_t k, const void* w, int64_t ldw, const float* bias, float* y,
    int64_t ldy) {
  const int64_t k8 = k & ~int64_t{7}, kt = k - k8;
  const void* wt = PACKED ? static_cast<const void*>(static_cast<const float*>(w) + NW * k8)
                          : static_cast<const void*>(BF16 ? static_cast<const char*>(w) + 2 * k8
                                                          : static_cast<const char*>(w) + 4 * k8);
  const int64_t ldwt = PACKED ? kt : ldw;
#define SR3D_TILE(m, i)                                                                 \
  tile_at<(m), NW, BF16, PACKED>(PACKED ? x + (i) / NX * xts : x + (i) * k, k, w, ldw, wt, \
                                 ldwt, k8, kt, bias, y + (i) * ldy, ldy)
  const int64_t xts = x_tile_stride<NX>(k);
  int64_t i = 0;
  for (; i + NX <= n; i += NX) SR3D_TILE(NX, i);
  if constexpr (PACKED) {  // the packed partial tile has exactly n - i rows
    switch (n - i) {
      case 1: SR3D_TILE(1, i); break;
      case 2: SR3D_TILE(NX > 2 ? 2 : 1, i); break;
      case 3: SR3D_TILE(NX > 3 ? 3 : 1, i); break;
      case 4: SR3D_TILE(NX > 4 ? 4 : 1, i); break;
      case 5: SR3D_TILE(NX > 5 ? 5 : 1, i); break;
      case 6: SR3D_TILE(NX > 6 ? 6 : 1, i); break;
      case 7: SR3D_TILE(NX > 7 ? 7 : 1, i); break;
      default: break;
    }
  } else {
    if (NX > 4 && i + 4 <= n) {
      SR3D_TILE(NX > 4 ? 4 : 1, i);
      i += 4;
    }
    if (NX > 2 && i + 2 <= n) {
      SR3D_TILE(NX > 2 ? 2 : 1, i);
      i += 2;
    }
    if (i < n) SR3D_TILE(1, i);
  }
#undef SR3D_TILE
}

// linear_block (below) on NX x NW tiles; the remaining weight rows one at a time. With at
// least two row tiles per weight group the x block is packed once and each weight group is
// widened once into aligned per-thread buffers, so the inner loop is only aligned loads from
// two streams, muls and adds (and a weight group's bf16 widening is shared by all the tiles).
template <int NX, int NW, bool BF16>
__attribute__((target("avx2"), always_inline)) inline void linear_block_avx(
    const float* x, int64_t n, int64_t k, const void* w, int64_t ldw, int64_t rows,
    const float* bias, float* y, int64_t ldy) {
  constexpr int64_t esz = BF16 ? 2 : 4;
  const char* wc = static_cast<const char*>(w);
  int64_t r = 0;
  if (n >= 2 * NX && NX <= 8) {
    thread_local PackBuf xbuf, wbuf;
    float* xp = xbuf.get((n + NX - 1) / NX * x_tile_stride<NX>(k));
    float* wp = wbuf.get(NW * k);
    pack_x<NX>(x, n, k, xp);
    for (; r + NW <= rows; r += NW) {
      pack_w<BF16>(wc + r * ldw * esz, ldw, NW, k, wp);
      tile_rows_avx<NX, NW, false, true>(xp, n, k, wp, k, bias ? bias + r : nullptr, y + r, ldy);
    }
    for (; r < rows; ++r) {
      pack_w<BF16>(wc + r * ldw * esz, ldw, 1, k, wp);
      tile_rows_avx<NX, 1, false, true>(xp, n, k, wp, k, bias ? bias + r : nullptr, y + r, ldy);
    }
    return;
  }
  for (; r + NW <= rows; r += NW)
    tile_rows_avx<NX, NW, BF16, false>(x, n, k, wc + r * ldw * esz, ldw, bias ? bias + r : nullptr,
                                       y + r, ldy);
  for (; r < rows; ++r)
    tile_rows_avx<NX, 1, BF16, false>(x, n, k, wc + r * ldw * esz, ldw, bias ? bias + r : nullptr,
                                      y + r, ldy);
}

__attribute__((target("avx2"))) void linear_block_avx2(const float* x, int64_t n, int64_t k,
                                                       const void* w, bool bf16, int64_t ldw,
                                                       int64_t rows, const float* bias, float* y,
                                                       int64_t ldy) {
  if (bf16) linear_block_avx<4, 2, true>(x, n, k, w, ldw, rows, bias, y, ldy);
  else linear_block_avx<4, 2, false>(x, n, k, w, ldw, rows, bias, y, ldy);
}

__attribute__((target("avx2,avx512f,avx512vl"))) void linear_block_avx512(
    const float* x, int64_t n, int64_t k, const void* w, bool bf16, int64_t ldw, int64_t rows,
    const float* bias, float* y, int64_t ldy) {
  if (bf16) linear_block_avx<8, 3, true>(x, n, k, w, ldw, rows, bias, y, ldy);
  else linear_block_avx<8, 3, false>(x, n, k, w, ldw, rows, bias, y, ldy);
}

#endif

// y[i][r] for i < n, r in [0, rows) (see linear_block_generic): the best kernel for this CPU.
void linear_block(const float* x, int64_t n, int64_t k, const void* w, bool bf16, int64_t ldw,
                  int64_t rows, const float* bias, float* y, int64_t ldy) {
#if defined(__aarch64__)
  if (cpu_neon()) return cpu::linear_block_neon(x, n, k, w, bf16, ldw, rows, bias, y, ldy);
#endif
#ifdef SR3D_HAVE_GEMV_AVX2
  switch (cpu::x86_isa()) {
    case 2: return linear_block_avx512(x, n, k, w, bf16, ldw, rows, bias, y, ldy);
    case 1: return linear_block_avx2(x, n, k, w, bf16, ldw, rows, bias, y, ldy);
    default: break;
  }
#endif
  linear_block_generic(x, n, k, w, bf16, ldw, rows, bias, y, ldy);
}

// One input row against `rows` weight rows (see above); falls back to linear_block.
void gemv_rows(const float* x, int64_t k, const void* w, bool bf16, int64_t rows,
               const float* bias, float* y) {
#if defined(__aarch64__)
  if (cpu_neon()) return cpu::gemv_neon(x, k, w, bf16 ? WType::kBF16 : WType::kF32, rows, bias, y);
#endif
#ifdef SR3D_HAVE_GEMV_AVX2
  // SR3D_CPU_ISA caps this one too (it once asked the CPU alone, so =portable still ran AVX2).
  if (cpu::linear_gemv_isa() == 1) {
    if (bf16) gemv_avx2<true>(x, k, w, rows, bias, y);
    else gemv_avx2<false>(x, k, w, rows, bias, y);
    return;
  }
#endif
  linear_block_generic(x, 1, k, w, bf16, k, rows, bias, y, rows);
}

// Input rows per pass over a weight row: the x block (rows * k floats) should stay in L2
// (~512 KiB) while the chunk's weight rows stream past it once.
int64_t x_block_rows(int64_t k, int64_t n) {
  int64_t nb = (512 << 10) / (4 * k);
  nb = std::max<int64_t>(8, std::min<int64_t>(64, nb)) & ~int64_t{7};  // whole 8-row tiles
  return std::min(nb, n);
}

// Chunks of output rows (linear_rows.h) for rows of k weights of esz bytes.
int linear_chunks(int64_t n, int64_t rows, int64_t k, int64_t esz) {
  return cpu::linear_chunk_count(n, rows, rows * k * esz, n * rows * k);
}

}  // namespace

// The quantized fields of w (WeightRef): sizes, pointers and that perm is a permutation.
void quant_check(const WeightRef& w) {
  need_ptr(w.scales, "weight scales");
  need_ptr(w.zeros, "weight zeros");
  if (w.group < 1 || w.cols % w.group != 0)
    throw_invalid_argument("a group size that divides the weight cols (" + num(w.cols) + ")",
                           "weight group", num(w.group));
  if (w.type == WType::kQ4 && w.group % 2 != 0)
    throw_invalid_argument("an even group size for int4 (two inputs per byte)", "weight group",
                           num(w.group));
  if (!w.perm) return;
  std::vector<char> seen(static_cast<size_t>(w.cols), 0);
  for (int64_t j = 0; j < w.cols; ++j) {
    const int32_t p = w.perm[j];
    if (p < 0 || p >= w.cols || seen[static_cast<size_t>(p)])
      throw_invalid_argument("a permutation of 0.." + num(w.cols - 1) + " (each input once)",
                             "weight perm[" + num(j) + "]", num(p));
    seen[static_cast<size_t>(p)] = 1;
  }
}

void linear_check(const float* x, int64_t n, const WeightRef& w, const float* /*bias*/,
                     const float* y) {
  need_positive(n, "n (input rows)");
  need_positive(w.rows, "weight rows (out features)");
  need_positive(w.cols, "weight cols (in features)");
  if (wtype_quantized(w.type)) quant_check(w);
  else need_wtype(w.type, "weight");
  need_ptr(x, "x");
  need_ptr(w.data, "weight");
  need_ptr(y, "y");
}

namespace cpu {

int linear_gemv_isa() {
#ifdef SR3D_HAVE_GEMV_AVX2
  return x86_isa() >= 1 ? 1 : 0;
#else
  return 0;
#endif
}

void dequantize_rows(const WeightRef& w, int64_t r0, int64_t count, float* out) {
  const int64_t ng = w.cols / w.group, rb = quant_row_bytes(w);
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r0 + count; ++r)
    dequant_row(q + r * rb, w.type == WType::kQ4, w.scales + r * ng, w.zeros + r * ng, w.group,
                w.cols, w.perm, out + (r - r0) * w.cols);
}

void linear_reference(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y) {
  const int64_t k = w.cols;
  if (wtype_quantized(w.type)) {  // the float32 reference over each dequantized row
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < w.rows; ++r) {
      dequantize_rows(w, r, 1, row.data());
      for (int64_t i = 0; i < n; ++i) {
        float s = 0.f;
        for (int64_t c = 0; c < k; ++c) s += x[i * k + c] * row[c];
        y[i * w.rows + r] = bias ? s + bias[r] : s;
      }
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < w.rows; ++r) {
      float s = 0.f;
      for (int64_t c = 0; c < k; ++c) s += x[i * k + c] * load_weight(w.data, w.type, r * k + c);
      y[i * w.rows + r] = bias ? s + bias[r] : s;
    }
}

void linear_fast(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y) {
  linear_multi_fast(x, n, &w, &bias, &y, 1);
}

void linear_multi_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                       float* const* ys, int count) {
  const int64_t k = ws[0].cols;
  const int64_t nb = x_block_rows(k, n);
  bool f16 = false;
  int nq = 0;
  int64_t total = 0, bytes = 0;
  for (int i = 0; i < count; ++i) {
    f16 |= ws[i].type == WType::kF16;
    nq += wtype_quantized(ws[i].type);
    total += ws[i].rows;
    bytes += ws[i].rows * wtype_size(ws[i].type);
  }
  if (nq) {  // the quantized ones in one region (linear_q.cc), the others each on its own
    std::vector<WeightRef> qw;
    std::vector<const float*> qb;
    std::vector<float*> qy;
    for (int i = 0; i < count; ++i) {
      if (wtype_quantized(ws[i].type)) {
        qw.push_back(ws[i]);
        qb.push_back(biases[i]);
        qy.push_back(ys[i]);
      } else {
        linear_multi_fast(x, n, &ws[i], &biases[i], &ys[i], 1);
      }
    }
    linear_q_fast(x, n, qw.data(), qb.data(), qy.data(), nq);
    return;
  }
  if (f16) {
    // float16 has no cheap in-register conversion in the baseline clone: convert 16 weight
    // rows at a time to float32 scratch, then run the float32 tiles (same arithmetic).
    for (int i = 0; i < count; ++i) {
      const WeightRef& w = ws[i];
      const float* bias = biases[i];
      float* y = ys[i];
      if (w.type != WType::kF16) {
        linear_multi_fast(x, n, &w, &bias, &y, 1);
        continue;
      }
      const int64_t rows = w.rows;
      parallel_for(rows, linear_chunks(n, rows, k, 2), [&](int, int64_t b, int64_t e) {
        const uint16_t* src = static_cast<const uint16_t*>(w.data);
#if defined(__aarch64__)
        if (n == 1 && cpu_neon())  // NEON widens f16 in registers (FCVTL): no scratch
          return cpu::gemv_neon(x, k, src + b * k, WType::kF16, e - b, bias ? bias + b : nullptr, y + b);
#endif
        std::vector<float> wf(static_cast<size_t>(16 * k));
        for (int64_t r0 = b; r0 < e; r0 += 16) {
          const int64_t cnt = std::min<int64_t>(16, e - r0);
#if defined(__aarch64__)
          if (cpu_neon()) cpu::f16_to_f32_neon(src + r0 * k, cnt * k, wf.data());
          else
#endif
            for (int64_t i = 0; i < cnt * k; ++i) wf[i] = f16_to_float(src[r0 * k + i]);
          for (int64_t i0 = 0; i0 < n; i0 += nb)
            linear_block(x + i0 * k, std::min(nb, n - i0), k, wf.data(), false, k, cnt,
                         bias ? bias + r0 : nullptr, y + i0 * rows + r0, rows);
        }
      });
    }
    return;
  }
  // One parallel region over the concatenated output rows of all the weights (q,k,v or
  // gate,up share their input): fewer pool wake-ups per decode step.
  const int64_t esz_avg = std::max<int64_t>(1, bytes / std::max<int64_t>(1, total));
  parallel_for(total, linear_chunks(n, total, k, esz_avg), [&](int, int64_t b, int64_t e) {
    for_rows_in(ws, count, b, e, [&](int i, int64_t lo, int64_t hi) {
      const WeightRef& w = ws[i];
      const bool bf16 = w.type == WType::kBF16;
      const int64_t esz = bf16 ? 2 : 4;
      if (n == 1) {
        gemv_rows(x, k, static_cast<const char*>(w.data) + lo * k * esz, bf16, hi - lo,
                  biases[i] ? biases[i] + lo : nullptr, ys[i] + lo);
        return;
      }
      for (int64_t i0 = 0; i0 < n; i0 += nb)
        linear_block(x + i0 * k, std::min(nb, n - i0), k,
                     static_cast<const char*>(w.data) + lo * k * esz, bf16, k, hi - lo,
                     biases[i] ? biases[i] + lo : nullptr, ys[i] + i0 * w.rows + lo, w.rows);
    });
  });
}

}  // namespace cpu

void linear(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
            Impl impl) {
  linear_check(x, n, w, bias, y);
  run_impl(impl,
           [&] { cpu::linear_reference(x, n, w, bias, y); },
           [&] { cpu::linear_fast(x, n, w, bias, y); },
           SR3D_CUDA_PATH(cuda::linear_host(x, n, w, bias, y)));
}

}  // namespace sr3d
