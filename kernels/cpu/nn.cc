// CPU NN ops (see nn.h for the contracts, nn_cpu.h for the numerics of the fast paths).
#include "../nn.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "nn_cpu.h"
#include "simd.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif

// The 8-lane vector helpers are always inlined into their callers, so the AVX-vs-SSE
// argument ABI note GCC prints for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sr3d {

const char* wtype_name(WType t) {
  switch (t) {
    case WType::kF32: return "float32";
    case WType::kF16: return "float16";
    case WType::kBF16: return "bfloat16";
  }
  return "unknown";
}

namespace {

std::string num(int64_t v) { return std::to_string(v); }

void need_ptr(const void* p, const char* name) {
  if (!p) throw_invalid_argument("a non-null buffer", name, "nullptr");
}
void need_positive(int64_t v, const char* name) {
  if (v < 1) throw_invalid_argument("a positive size", name, num(v));
}
void need_wtype(WType t, const char* name) {
  if (t != WType::kF32 && t != WType::kF16 && t != WType::kBF16)
    throw_invalid_argument("a weight dtype (float32, float16 or bfloat16)", name,
                           "dtype code " + num(static_cast<int>(t)));
}
void need_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw_invalid_argument("a finite number", name, format_number(v));
}

constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)

inline float gelu_tanh(float x) {
  const float k = static_cast<float>(kSqrt2OverPi);
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
inline float gelu_erf(float x) {
  return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(M_SQRT1_2)));
}
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float apply_act(float x, Act a) {
  switch (a) {
    case Act::kGeluTanh: return gelu_tanh(x);
    case Act::kGeluErf: return gelu_erf(x);
    default: return silu(x);
  }
}

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

// ---- linear ------------------------------------------------------------------------------
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

bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
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

// 2: AVX-512VL, 1: AVX2, 0: neither. SR3D_CPU_ISA=avx2|portable caps it (the tests run every
// variant this way).
int gemm_isa() {
  static const int isa = [] {
    const char* cap = std::getenv("SR3D_CPU_ISA");
    const std::string want = cap ? cap : "";
    __builtin_cpu_init();
    if (want.empty() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
      return 2;
    if ((want.empty() || want == "avx2") && __builtin_cpu_supports("avx2")) return 1;
    return 0;
  }();
  return isa;
}
#endif

// y[i][r] for i < n, r in [0, rows) (see linear_block_generic): the best kernel for this CPU.
void linear_block(const float* x, int64_t n, int64_t k, const void* w, bool bf16, int64_t ldw,
                  int64_t rows, const float* bias, float* y, int64_t ldy) {
#ifdef SR3D_HAVE_GEMV_AVX2
  switch (gemm_isa()) {
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
#ifdef SR3D_HAVE_GEMV_AVX2
  if (cpu_has_avx2()) {
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

// Chunks of output rows: enough that a chunk streams >= ~32 KiB of weights (the pool's
// workers spin between regions, so handing a chunk over costs ~1 µs, not a wake-up), one per
// thread for decode-sized n (uniform work), up to 4 per thread for GEMMs (load balance).
int linear_chunks(int64_t n, int64_t rows, int64_t k, int64_t esz) {
  const int64_t work = std::max<int64_t>(rows * k * esz, n * rows * k);
  const int64_t cap = n <= 4 ? cpu_threads() : 4LL * cpu_threads();
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({work >> 15, cap, rows})));
}

// ---- attention ---------------------------------------------------------------------------
// exp(x) for the softmax's x = s - max <= 0: Cephes' expf (range reduction by ln 2 in two
// parts, a degree-5 polynomial), within 1 ulp of the correctly rounded exp on [-87, 0] (checked at
// 87M points); x below -87 gives exp(-87)
// (1.6e-38, nothing next to the row's largest term, 1). The 8-lane and the scalar versions do
// the same float operations in the same order (no FMA contraction), so a score's exp does not
// depend on whether it fell in a vector or in the tail.
SR3D_INLINE float exp_nonpos(float x) {
  x = x < -87.f ? -87.f : x;
  const float fx = x * 1.44269504088896341f + 0.5f;
  int32_t n = static_cast<int32_t>(fx);
  if (static_cast<float>(n) > fx) n -= 1;
  const float nf = static_cast<float>(n);
  x = x - nf * 0.693359375f;
  x = x - nf * -2.12194440e-4f;
  const float z = x * x;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.f;
  const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}
SR3D_INLINE v8f exp8_nonpos(v8f x) {
  const v8f lo = {-87.f, -87.f, -87.f, -87.f, -87.f, -87.f, -87.f, -87.f};
  x = x < lo ? lo : x;
  const v8f fx = x * 1.44269504088896341f + 0.5f;
  v8i32 n = __builtin_convertvector(fx, v8i32);
  n = n + (__builtin_convertvector(n, v8f) > fx);  // a true comparison is -1: floor
  const v8f nf = __builtin_convertvector(n, v8f);
  x = x - nf * 0.693359375f;
  x = x - nf * -2.12194440e-4f;
  const v8f z = x * x;
  v8f y = x * 1.9875691500e-4f + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.f;
  const v8i32 bits = (n + 127) << 23;
  v8f scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// Up to 4 (query, head) rows that read the same K/V head, together, so each K and V row is loaded
// once for all of them. Per row: scores over `limit[r]` keys, softmax in float32 with max
// subtraction (sequential sums), the weighted value sum in 8-lane accumulators. Each row's
// arithmetic and its order do not depend on which rows share its block, so any grouping gives
// bit-identical results (prefill of n tokens == n single-token steps). scratch: 4 x ld floats.
SR3D_TARGET_CLONES
void attention_rows4(const float* const* q, int nr, const float* k, const float* v, int64_t stride,
                     const int64_t* limit, int64_t d, float scale, float* scratch, int64_t ld,
                     float* const* out) {
  int64_t lmax = 0;
  float m[4], sum[4];
  for (int r = 0; r < nr; ++r) {
    lmax = std::max(lmax, limit[r]);
    m[r] = -INFINITY;
  }
  // Scores in 4 x 2 register tiles (the Linear kernel's dot_tile: per score the same 8-lane
  // sums and reduction as dot_f32), the query rows copied next to each other first.
  float qbuf[4 * 256];
  std::vector<float> qheap;
  float* qb = qbuf;
  if (d > 256) {
    qheap.resize(static_cast<size_t>(4 * d));
    qb = qheap.data();
  }
  for (int r = 0; r < nr; ++r) std::memcpy(qb + r * d, q[r], static_cast<size_t>(d) * sizeof(float));
  for (int64_t j = 0; j < lmax; j += 2) {
    const int nw = lmax - j >= 2 ? 2 : 1;
    float res[8];
    dot_tile_any<false>(nr, nw, qb, d, k + j * stride, stride, d, res);
    for (int r = 0; r < nr; ++r)
      for (int t = 0; t < nw; ++t) {
        if (j + t >= limit[r]) continue;
        const float s = res[r * nw + t] * scale;
        scratch[r * ld + j + t] = s;
        m[r] = std::max(m[r], s);
      }
  }
  for (int r = 0; r < nr; ++r) {
    float* sr = scratch + r * ld;
    const float mr = m[r];
    const v8f mv = {mr, mr, mr, mr, mr, mr, mr, mr};
    int64_t j = 0;
    for (; j + 8 <= limit[r]; j += 8) store8(sr + j, exp8_nonpos(load8(sr + j) - mv));
    for (; j < limit[r]; ++j) sr[j] = exp_nonpos(sr[j] - mr);
    float acc = 0.f;
    for (j = 0; j < limit[r]; ++j) acc += sr[j];
    sum[r] = acc;
  }
  const int64_t d8 = d & ~int64_t{7};
  int64_t lmin = lmax;
  for (int r = 0; r < nr; ++r) lmin = std::min(lmin, limit[r]);
  for (int64_t c = 0; c < d8; c += 8) {
    v8f acc[4] = {};
    int64_t j = 0;
    if (nr == 4) {  // the common case: a full block, keys every row sees, no per-row test
      for (; j < lmin; ++j) {
        const v8f vv = load8(v + j * stride + c);
        for (int r = 0; r < 4; ++r) {
          const float p = scratch[r * ld + j];
          const v8f pv = {p, p, p, p, p, p, p, p};
          acc[r] += pv * vv;
        }
      }
    }
    for (; j < lmax; ++j) {
      const v8f vv = load8(v + j * stride + c);
      for (int r = 0; r < nr; ++r) {
        if (j >= limit[r]) continue;
        const float p = scratch[r * ld + j];
        const v8f pv = {p, p, p, p, p, p, p, p};
        acc[r] += pv * vv;
      }
    }
    for (int r = 0; r < nr; ++r) store8(out[r] + c, acc[r] / sum[r]);
  }
  for (int64_t c = d8; c < d; ++c) {
    for (int r = 0; r < nr; ++r) {
      float acc = 0.f;
      for (int64_t j = 0; j < limit[r]; ++j) acc += scratch[r * ld + j] * v[j * stride + c];
      out[r][c] = acc / sum[r];
    }
  }
}

// ---- norms -------------------------------------------------------------------------------
SR3D_TARGET_CLONES
void layer_norm_row(const float* x, int64_t d, const float* gamma, const float* beta, float eps,
                    float* y) {
  const int64_t d8 = d & ~int64_t{7};
  v8f acc = {};
  for (int64_t c = 0; c < d8; c += 8) acc += load8(x + c);
  float s = hsum8(acc);
  for (int64_t c = d8; c < d; ++c) s += x[c];
  const float mean = s / static_cast<float>(d);
  const v8f mv = {mean, mean, mean, mean, mean, mean, mean, mean};
  acc = v8f{};
  for (int64_t c = 0; c < d8; c += 8) {
    const v8f t = load8(x + c) - mv;
    acc += t * t;
  }
  float ss = hsum8(acc);
  for (int64_t c = d8; c < d; ++c) ss += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  const v8f rv = {rstd, rstd, rstd, rstd, rstd, rstd, rstd, rstd};
  for (int64_t c = 0; c < d8; c += 8)
    store8(y + c, (load8(x + c) - mv) * rv * load8(gamma + c) + load8(beta + c));
  for (int64_t c = d8; c < d; ++c) y[c] = (x[c] - mean) * rstd * gamma[c] + beta[c];
}

SR3D_TARGET_CLONES
void rms_norm_row(const float* x, int64_t d, const float* gamma, float eps, float* y) {
  const int64_t d8 = d & ~int64_t{7};
  v8f acc = {};
  for (int64_t c = 0; c < d8; c += 8) acc += load8(x + c) * load8(x + c);
  float ss = hsum8(acc);
  for (int64_t c = d8; c < d; ++c) ss += x[c] * x[c];
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  const v8f rv = {r, r, r, r, r, r, r, r};
  for (int64_t c = 0; c < d8; c += 8) store8(y + c, load8(gamma + c) * (load8(x + c) * rv));
  for (int64_t c = d8; c < d; ++c) y[c] = gamma[c] * (x[c] * r);
}

SR3D_TARGET_CLONES
void silu_mul_span(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// im2col of one patch row: cols[p][c*pp*pp + ky*pp + kx] for the patches of grid row py.
void im2col_row(const float* img, int64_t size, int64_t patch, int64_t py, float* cols) {
  const int64_t P = size / patch, kk = 3 * patch * patch;
  for (int64_t px = 0; px < P; ++px)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t ky = 0; ky < patch; ++ky)
        std::memcpy(cols + px * kk + (c * patch + ky) * patch,
                    img + (c * size + py * patch + ky) * size + px * patch, patch * sizeof(float));
}

}  // namespace

// ---- argument checks ---------------------------------------------------------------------

void nn_check_linear(const float* x, int64_t n, const WeightRef& w, const float* /*bias*/,
                     const float* y) {
  need_positive(n, "n (input rows)");
  need_positive(w.rows, "weight rows (out features)");
  need_positive(w.cols, "weight cols (in features)");
  need_wtype(w.type, "weight");
  need_ptr(x, "x");
  need_ptr(w.data, "weight");
  need_ptr(y, "y");
}

void nn_check_attention(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                        int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                        int64_t q_offset, const float* out) {
  need_positive(nq, "nq (query rows)");
  need_positive(nk, "nk (key rows)");
  need_positive(hq, "hq (query heads)");
  need_positive(hkv, "hkv (key/value heads)");
  need_positive(d, "d (head dim)");
  if (hq % hkv != 0)
    throw_invalid_argument("a query head count divisible by the key/value head count (" +
                               num(hkv) + ")",
                           "hq", num(hq));
  need_finite(scale, "scale");
  if (causal && q_offset < 0)
    throw_invalid_argument("a non-negative query offset", "q_offset", num(q_offset));
  need_ptr(q, "q");
  need_ptr(k, "k");
  need_ptr(v, "v");
  need_ptr(out, "out");
}

void rope_inv_freq(int64_t head_dim, double theta, float* inv_freq) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(e)));
  }
}

namespace cpu {

// ---- linear ------------------------------------------------------------------------------

void linear_reference(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y) {
  const int64_t k = w.cols;
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
  int64_t total = 0, bytes = 0;
  for (int i = 0; i < count; ++i) {
    f16 |= ws[i].type == WType::kF16;
    total += ws[i].rows;
    bytes += ws[i].rows * wtype_size(ws[i].type);
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
        std::vector<float> wf(static_cast<size_t>(16 * k));
        const uint16_t* src = static_cast<const uint16_t*>(w.data);
        for (int64_t r0 = b; r0 < e; r0 += 16) {
          const int64_t cnt = std::min<int64_t>(16, e - r0);
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
    int64_t base = 0;
    for (int i = 0; i < count; ++i) {
      const WeightRef& w = ws[i];
      const int64_t lo = std::max(b, base) - base, hi = std::min(e, base + w.rows) - base;
      base += w.rows;
      if (lo >= hi) continue;
      const bool bf16 = w.type == WType::kBF16;
      const int64_t esz = bf16 ? 2 : 4;
      if (n == 1) {
        gemv_rows(x, k, static_cast<const char*>(w.data) + lo * k * esz, bf16, hi - lo,
                  biases[i] ? biases[i] + lo : nullptr, ys[i] + lo);
        continue;
      }
      for (int64_t i0 = 0; i0 < n; i0 += nb)
        linear_block(x + i0 * k, std::min(nb, n - i0), k,
                     static_cast<const char*>(w.data) + lo * k * esz, bf16, k, hi - lo,
                     biases[i] ? biases[i] + lo : nullptr, ys[i] + i0 * w.rows + lo, w.rows);
    }
  });
}

// ---- layer_norm / rms_norm ----------------------------------------------------------------

void layer_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma,
                          const float* beta, float eps, float* y) {
  // The plain definition, its sums in double (a single float running sum over d = 10368
  // terms drifts ~7e-5 relative: the reference must be the accurate side of every check).
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * d;
    double s = 0.0;
    for (int64_t c = 0; c < d; ++c) s += r[c];
    const double mean = s / static_cast<double>(d);
    double ss = 0.0;
    for (int64_t c = 0; c < d; ++c) ss += (r[c] - mean) * (r[c] - mean);
    const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t c = 0; c < d; ++c)
      y[i * d + c] = static_cast<float>((r[c] - mean) * rstd * gamma[c] + beta[c]);
  }
}

void layer_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                     float eps, float* y) {
  parallel_for(n, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) layer_norm_row(x + i * d, d, gamma, beta, eps, y + i * d);
  });
}

void rms_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                        float* y) {
  for (int64_t i = 0; i < n; ++i) {  // sums in double, as layer_norm_reference
    const float* r = x + i * d;
    double ss = 0.0;
    for (int64_t c = 0; c < d; ++c) ss += static_cast<double>(r[c]) * r[c];
    const double rs = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t c = 0; c < d; ++c) y[i * d + c] = static_cast<float>(gamma[c] * (r[c] * rs));
  }
}

void rms_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                   float* y) {
  parallel_for(n, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) rms_norm_row(x + i * d, d, gamma, eps, y + i * d);
  });
}

// ---- activation / silu_mul -----------------------------------------------------------------

void activation_reference(float* x, int64_t n, Act act) {
  for (int64_t i = 0; i < n; ++i) x[i] = apply_act(x[i], act);
}

void activation_fast(float* x, int64_t n, Act act) {
  const int chunks = static_cast<int>(std::min<int64_t>(4LL * cpu_threads(), (n + 32767) / 32768));
  parallel_for(n, chunks, [&](int, int64_t b, int64_t e) {
    switch (act) {
      case Act::kGeluTanh: for (int64_t i = b; i < e; ++i) x[i] = gelu_tanh(x[i]); break;
      case Act::kGeluErf: for (int64_t i = b; i < e; ++i) x[i] = gelu_erf(x[i]); break;
      default: for (int64_t i = b; i < e; ++i) x[i] = silu(x[i]); break;
    }
  });
}

void silu_mul_reference(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

void silu_mul_fast(const float* gate, const float* up, int64_t n, float* out) {
  const int chunks = static_cast<int>(std::min<int64_t>(4LL * cpu_threads(), (n + 32767) / 32768));
  parallel_for(n, chunks, [&](int, int64_t b, int64_t e) {
    silu_mul_span(gate + b, up + b, e - b, out + b);
  });
}

// ---- rope --------------------------------------------------------------------------------

void rope_reference(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                    const int32_t* positions, double theta) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  rope_inv_freq(head_dim, theta, inv.data());
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      float* r = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = static_cast<float>(positions[t]) * inv[i];
        const float c = std::cos(a), s = std::sin(a);
        const float x1 = r[i], x2 = r[i + half];
        r[i] = x1 * c - x2 * s;
        r[i + half] = x2 * c + x1 * s;
      }
    }
}

void rope_fast(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
               const int32_t* positions, double theta) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  rope_inv_freq(head_dim, theta, inv.data());
  parallel_for(n_tok, 0, [&](int, int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(2 * half));
    for (int64_t t = b; t < e; ++t) {
      for (int64_t i = 0; i < half; ++i) {  // one cos/sin per token, shared by its heads
        const float a = static_cast<float>(positions[t]) * inv[i];
        cs[i] = std::cos(a);
        cs[half + i] = std::sin(a);
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* r = x + (t * n_heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = r[i], x2 = r[i + half];
          r[i] = x1 * cs[i] - x2 * cs[half + i];
          r[i + half] = x2 * cs[i] + x1 * cs[half + i];
        }
      }
    }
  });
}

// ---- attention ---------------------------------------------------------------------------

void attention_reference(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                         int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                         int64_t q_offset, float* out) {
  const int64_t group = hq / hkv;
  std::vector<float> p(static_cast<size_t>(nk));
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t h = 0; h < hq; ++h) {
      const float* qr = q + (i * hq + h) * d;
      const int64_t kh = h / group;
      const int64_t limit = causal ? std::min(nk, q_offset + i + 1) : nk;
      float m = -INFINITY;
      for (int64_t j = 0; j < limit; ++j) {
        const float* kr = k + (j * hkv + kh) * d;
        float s = 0.f;
        for (int64_t c = 0; c < d; ++c) s += qr[c] * kr[c];
        p[j] = s * scale;
        m = std::max(m, p[j]);
      }
      float sum = 0.f;
      for (int64_t j = 0; j < limit; ++j) {
        p[j] = std::exp(p[j] - m);
        sum += p[j];
      }
      float* o = out + (i * hq + h) * d;
      for (int64_t c = 0; c < d; ++c) {
        float acc = 0.f;
        for (int64_t j = 0; j < limit; ++j) acc += p[j] * v[(j * hkv + kh) * d + c];
        o[c] = acc / sum;
      }
    }
}

void attention_fast(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                    int64_t q_offset, float* out) {
  const int64_t group = hq / hkv, stride = hkv * d;
  // Rows (query i, head h) are grouped by the K/V head they read, then taken 4 at a time:
  // row r of kv head kh is query r / group, head kh * group + r % group.
  const int64_t per_kh = nq * group, blocks_per_kh = (per_kh + 3) / 4, blocks = hkv * blocks_per_kh;
  const int64_t work = nq * hq * std::min(nk, (causal ? q_offset + nq : nk)) * d;  // ~MACs
  const int chunks = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>({blocks, 8LL * cpu_threads(), work >> 15})));
  parallel_for(blocks, chunks, [&](int, int64_t b, int64_t e) {
    std::vector<float> scratch(static_cast<size_t>(4 * nk));
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t kh = blk / blocks_per_kh, r0 = (blk % blocks_per_kh) * 4;
      const int nr = static_cast<int>(std::min<int64_t>(4, per_kh - r0));
      const float* qs[4];
      float* os[4];
      int64_t limit[4];
      for (int t = 0; t < nr; ++t) {
        const int64_t r = r0 + t, i = r / group, h = kh * group + r % group;
        qs[t] = q + (i * hq + h) * d;
        os[t] = out + (i * hq + h) * d;
        limit[t] = causal ? std::min(nk, q_offset + i + 1) : nk;
      }
      attention_rows4(qs, nr, k + kh * d, v + kh * d, stride, limit, d, scale, scratch.data(), nk, os);
    }
  });
}

// ---- space_to_channel3 -------------------------------------------------------------------

void space_to_channel3_reference(const float* x, int64_t n, int64_t g, int64_t c, float* y) {
  const int64_t G = (g + 2) / 3;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t R = 0; R < G; ++R)
      for (int64_t C = 0; C < G; ++C)
        for (int64_t m = 0; m < 3; ++m)
          for (int64_t kk = 0; kk < 3; ++kk)
            for (int64_t ch = 0; ch < c; ++ch) {
              const int64_t r = 3 * R + m, col = 3 * C + kk;
              y[((t * G * G) + R * G + C) * 9 * c + (m * 3 + kk) * c + ch] =
                  (r < g && col < g) ? x[(t * g * g + r * g + col) * c + ch] : 0.f;
            }
}

void space_to_channel3_fast(const float* x, int64_t n, int64_t g, int64_t c, float* y) {
  const int64_t G = (g + 2) / 3;
  parallel_for(n * G * G, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t tok = b; tok < e; ++tok) {
      const int64_t t = tok / (G * G), R = (tok / G) % G, C = tok % G;
      float* dst = y + tok * 9 * c;
      for (int64_t m = 0; m < 3; ++m)
        for (int64_t kk = 0; kk < 3; ++kk) {
          const int64_t r = 3 * R + m, col = 3 * C + kk;
          float* o = dst + (m * 3 + kk) * c;
          if (r < g && col < g) std::memcpy(o, x + (t * g * g + r * g + col) * c, c * sizeof(float));
          else std::memset(o, 0, c * sizeof(float));
        }
    }
  });
}

// ---- patch_embed -------------------------------------------------------------------------

void patch_embed_reference(const float* img, int64_t n, int64_t size, int64_t patch,
                           const WeightRef& w, const float* bias, float* out) {
  const int64_t P = size / patch, kk = 3 * patch * patch;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t py = 0; py < P; ++py)
      for (int64_t px = 0; px < P; ++px)
        for (int64_t o = 0; o < w.rows; ++o) {
          float s = 0.f;
          for (int64_t c = 0; c < 3; ++c)
            for (int64_t ky = 0; ky < patch; ++ky)
              for (int64_t kx = 0; kx < patch; ++kx)
                s += img[((t * 3 + c) * size + py * patch + ky) * size + px * patch + kx] *
                     load_weight(w.data, w.type, o * kk + (c * patch + ky) * patch + kx);
          out[((t * P + py) * P + px) * w.rows + o] = bias ? s + bias[o] : s;
        }
}

void patch_embed_fast(const float* img, int64_t n, int64_t size, int64_t patch,
                      const WeightRef& w, const float* bias, float* out) {
  const int64_t P = size / patch, kk = 3 * patch * patch;
  std::vector<float> cols(static_cast<size_t>(n * P * P * kk));
  parallel_for(n * P, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t tr = b; tr < e; ++tr)
      im2col_row(img + (tr / P) * 3 * size * size, size, patch, tr % P, cols.data() + tr * P * kk);
  });
  linear_fast(cols.data(), n * P * P, w, bias, out);
}

}  // namespace cpu

// ---- public dispatch -----------------------------------------------------------------------

void linear(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
            Impl impl) {
  nn_check_linear(x, n, w, bias, y);
  if (impl == Impl::kReference) return cpu::linear_reference(x, n, w, bias, y);
  if (impl == Impl::kFast) return cpu::linear_fast(x, n, w, bias, y);
#ifdef SR3D_WITH_CUDA
  return cuda::linear_host(x, n, w, bias, y);
#else
  throw_cpu_only_build();
#endif
}

void layer_norm(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                float eps, float* y, Impl impl) {
  need_positive(n, "n (rows)");
  need_positive(d, "d (features)");
  if (!(eps >= 0) || !std::isfinite(eps))
    throw_invalid_argument("a finite eps >= 0", "eps", format_number(eps));
  need_ptr(x, "x");
  need_ptr(gamma, "gamma");
  need_ptr(beta, "beta");
  need_ptr(y, "y");
  if (impl == Impl::kReference) return cpu::layer_norm_reference(x, n, d, gamma, beta, eps, y);
  if (impl == Impl::kFast) return cpu::layer_norm_fast(x, n, d, gamma, beta, eps, y);
#ifdef SR3D_WITH_CUDA
  return cuda::layer_norm_host(x, n, d, gamma, beta, eps, y);
#else
  throw_cpu_only_build();
#endif
}

void rms_norm(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y,
              Impl impl) {
  need_positive(n, "n (rows)");
  need_positive(d, "d (features)");
  if (!(eps >= 0) || !std::isfinite(eps))
    throw_invalid_argument("a finite eps >= 0", "eps", format_number(eps));
  need_ptr(x, "x");
  need_ptr(gamma, "gamma");
  need_ptr(y, "y");
  if (impl == Impl::kReference) return cpu::rms_norm_reference(x, n, d, gamma, eps, y);
  if (impl == Impl::kFast) return cpu::rms_norm_fast(x, n, d, gamma, eps, y);
#ifdef SR3D_WITH_CUDA
  return cuda::rms_norm_host(x, n, d, gamma, eps, y);
#else
  throw_cpu_only_build();
#endif
}

void activation(float* x, int64_t n, Act act, Impl impl) {
  need_positive(n, "n (values)");
  need_ptr(x, "x");
  if (act != Act::kGeluTanh && act != Act::kGeluErf && act != Act::kSilu)
    throw_invalid_argument("an activation (gelu_tanh, gelu_erf or silu)", "act",
                           "code " + num(static_cast<int>(act)));
  if (impl == Impl::kReference) return cpu::activation_reference(x, n, act);
  if (impl == Impl::kFast) return cpu::activation_fast(x, n, act);
#ifdef SR3D_WITH_CUDA
  return cuda::activation_host(x, n, act);
#else
  throw_cpu_only_build();
#endif
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, Impl impl) {
  need_positive(n, "n (values)");
  need_ptr(gate, "gate");
  need_ptr(up, "up");
  need_ptr(out, "out");
  if (impl == Impl::kReference) return cpu::silu_mul_reference(gate, up, n, out);
  if (impl == Impl::kFast) return cpu::silu_mul_fast(gate, up, n, out);
#ifdef SR3D_WITH_CUDA
  return cuda::silu_mul_host(gate, up, n, out);
#else
  throw_cpu_only_build();
#endif
}

void rope(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          double theta, Impl impl) {
  need_positive(n_tok, "n_tok (tokens)");
  need_positive(n_heads, "n_heads (heads)");
  if (head_dim < 2 || head_dim % 2 != 0)
    throw_invalid_argument("an even head dim >= 2", "head_dim", num(head_dim));
  if (!(theta > 0) || !std::isfinite(theta))
    throw_invalid_argument("a finite rope theta > 0", "theta", format_number(theta));
  need_ptr(x, "x");
  need_ptr(positions, "positions");
  for (int64_t t = 0; t < n_tok; ++t)
    if (positions[t] < 0)
      throw_invalid_argument("non-negative positions", "positions[" + num(t) + "]",
                             num(positions[t]));
  if (impl == Impl::kReference) return cpu::rope_reference(x, n_tok, n_heads, head_dim, positions, theta);
  if (impl == Impl::kFast) return cpu::rope_fast(x, n_tok, n_heads, head_dim, positions, theta);
#ifdef SR3D_WITH_CUDA
  return cuda::rope_host(x, n_tok, n_heads, head_dim, positions, theta);
#else
  throw_cpu_only_build();
#endif
}

void attention(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
               int64_t hq, int64_t hkv, int64_t d, float scale, bool causal, int64_t q_offset,
               float* out, Impl impl) {
  nn_check_attention(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out);
  if (impl == Impl::kReference)
    return cpu::attention_reference(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out);
  if (impl == Impl::kFast)
    return cpu::attention_fast(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out);
#ifdef SR3D_WITH_CUDA
  return cuda::attention_host(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out);
#else
  throw_cpu_only_build();
#endif
}

void space_to_channel3(const float* x, int64_t n, int64_t g, int64_t c, float* y, Impl impl) {
  need_positive(n, "n (tiles)");
  need_positive(g, "g (grid side)");
  need_positive(c, "c (channels)");
  need_ptr(x, "x");
  need_ptr(y, "y");
  if (impl == Impl::kReference) return cpu::space_to_channel3_reference(x, n, g, c, y);
  if (impl == Impl::kFast) return cpu::space_to_channel3_fast(x, n, g, c, y);
#ifdef SR3D_WITH_CUDA
  return cuda::space_to_channel3_host(x, n, g, c, y);
#else
  throw_cpu_only_build();
#endif
}

void patch_embed(const float* img, int64_t n, int64_t size, int64_t patch, const WeightRef& w,
                 const float* bias, float* out, Impl impl) {
  need_positive(n, "n (tiles)");
  need_positive(patch, "patch");
  need_positive(size, "size");
  if (size % patch != 0)
    throw_invalid_argument("an image size divisible by the patch size " + num(patch), "size",
                           num(size));
  need_positive(w.rows, "weight rows (hidden)");
  if (w.cols != 3 * patch * patch)
    throw_invalid_argument("weight cols 3*patch*patch = " + num(3 * patch * patch),
                           "patch_embed weight", num(w.cols) + " cols");
  need_wtype(w.type, "weight");
  need_ptr(img, "img");
  need_ptr(w.data, "weight");
  need_ptr(out, "out");
  if (impl == Impl::kReference) return cpu::patch_embed_reference(img, n, size, patch, w, bias, out);
  if (impl == Impl::kFast) return cpu::patch_embed_fast(img, n, size, patch, w, bias, out);
#ifdef SR3D_WITH_CUDA
  return cuda::patch_embed_host(img, n, size, patch, w, bias, out);
#else
  throw_cpu_only_build();
#endif
}

}  // namespace sr3d
