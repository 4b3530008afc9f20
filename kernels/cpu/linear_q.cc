// CPU int4 / int8 Linear, the fast path (linear.h states the arithmetic every path performs).
//
// Every output is one fixed sequence of float operations over the "stream" of its row: the
// weights exactly dequantized (s * float(q - z), one rounding, as the reference) and the inputs
// gathered into the same order once per call (act-order perm and int4's nibble de-interleave
// move x, never the weights). So the decode GEMV, which dequantizes in registers, and the
// prefill GEMM, which dequantizes a few rows to scratch per block of tokens, agree bit for bit,
// and so do the AVX-512, AVX2 and portable (GCC vector) kernels.
// GCC 12 flags the _mm512_undefined_* placeholders inside avx512fintrin.h's own conversions as
// maybe-uninitialized once inlined (a false positive; the header location decides, so the
// pragma must precede the include).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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
#define SR3D_Q_X86 1
#endif

// The vector helpers are always inlined into their callers (no AVX-vs-SSE ABI question).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sr3d {
namespace cpu {
namespace {

#define SR3D_QINLINE inline __attribute__((always_inline))

// The stream: `main` inputs in steps of 16 lanes (int4: whole 128-input blocks, int8: whole
// 16-input blocks), then the tail in stored order.
SR3D_QINLINE int64_t main_len(const WeightRef& w) {
  return w.type == WType::kQ4 ? (w.cols & ~int64_t{127}) : (w.cols & ~int64_t{15});
}

// Stored column j of row r, dequantized (the one rounding of the reference).
SR3D_QINLINE float wq(const WeightRef& w, int64_t r, int64_t j) {
  const int64_t ng = w.cols / w.group, g = r * ng + j / w.group;
  const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * quant_row_bytes(w);
  const int v = w.type == WType::kQ4 ? (j & 1 ? q[j >> 1] >> 4 : q[j >> 1] & 15) : q[j];
  return w.scales[g] * static_cast<float>(v - w.zeros[g]);
}

// x (n rows of w.cols) in stream order: stored column j takes input perm[j]; in each whole
// int4 block of 128 stored columns c.., stream position c + 16t + l holds column c + 8l + t
// (t < 8, l < 16): the 64 bytes are 16 dwords of 8 nibbles, and step t takes nibble t of each
// dword (one shift, no widening).
void make_xs(const float* x, int64_t n, const WeightRef& w, float* xs) {
  const int64_t k = w.cols, m = main_len(w);
  const int32_t* perm = w.perm;
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    float* o = xs + i * k;
    if (w.type == WType::kQ4) {
      for (int64_t c = 0; c < m; c += 128)
        for (int t = 0; t < 8; ++t)
          for (int l = 0; l < 16; ++l) {
            const int64_t j = c + 8 * l + t;
            o[c + 16 * t + l] = xi[perm ? perm[j] : j];
          }
    } else if (!perm) {
      std::memcpy(o, xi, static_cast<size_t>(m) * sizeof(float));
    } else {
      for (int64_t j = 0; j < m; ++j) o[j] = xi[perm[j]];
    }
    for (int64_t j = m; j < k; ++j) o[j] = xi[perm ? perm[j] : j];
  }
}

// Row r's weights in stream order (k floats at out), exactly dequantized.
SR3D_TARGET_CLONES
void deq_stream(const WeightRef& w, int64_t r, float* out) {
  const int64_t k = w.cols, G = w.group, ng = k / G, m = main_len(w);
  const float* sc = w.scales + r * ng;
  const uint8_t* z = w.zeros + r * ng;
  const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * quant_row_bytes(w);
  if (w.type == WType::kQ8) {  // stream order is stored order
    for (int64_t g = 0; g < ng; ++g) {
      const float s = sc[g];
      const int zi = z[g];
      for (int64_t j = g * G; j < (g + 1) * G; ++j) out[j] = s * static_cast<float>(q[j] - zi);
    }
    return;
  }
  for (int64_t c = 0; c < m; c += 128) {
    uint32_t d[16];  // the block's 16 dwords (little-endian: nibble t = bits 4t..4t+3)
    for (int l = 0; l < 16; ++l) {
      const uint8_t* b = q + c / 2 + 4 * l;
      d[l] = b[0] | static_cast<uint32_t>(b[1]) << 8 | static_cast<uint32_t>(b[2]) << 16 |
             static_cast<uint32_t>(b[3]) << 24;
    }
    if (G % 128 == 0) {  // one group: vectorizes over l
      const float s = sc[c / G];
      const int zi = z[c / G];
      for (int t = 0; t < 8; ++t)
        for (int l = 0; l < 16; ++l) {
          const int v = static_cast<int>((d[l] >> (4 * t)) & 15);
          out[c + 16 * t + l] = s * static_cast<float>(v - zi);
        }
      continue;
    }
    for (int t = 0; t < 8; ++t)
      for (int l = 0; l < 16; ++l) {
        const int64_t g = (c + 8 * l + t) / G;
        const int v = static_cast<int>((d[l] >> (4 * t)) & 15);
        out[c + 16 * t + l] = sc[g] * static_cast<float>(v - z[g]);
      }
  }
  for (int64_t j = m; j < k; ++j) out[j] = wq(w, r, j);
}

// The end of every output: the fixed tree over the 16 lane sums, the tail in stream order
// (one fma each), the bias.
SR3D_QINLINE float tree16(const float* a) {
  float t[8];
  for (int l = 0; l < 8; ++l) t[l] = a[l] + a[l + 8];
  return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}
SR3D_QINLINE float finish_tree(float t, const float* xs, int64_t m, int64_t k,
                               const float* wtail, const WeightRef* w, int64_t r,
                               const float* bias) {
  for (int64_t j = m; j < k; ++j) t = std::fma(xs[j], wtail ? wtail[j] : wq(*w, r, j), t);
  return bias ? t + bias[r] : t;
}
SR3D_QINLINE float finish(const float* lanes, const float* xs, int64_t m, int64_t k,
                          const float* wtail, const WeightRef* w, int64_t r, const float* bias) {
  return finish_tree(tree16(lanes), xs, m, k, wtail, w, r, bias);
}

// ---- portable kernels (GCC vectors: NEON on aarch64, SSE on old x86) ------------------------
typedef float v16f __attribute__((vector_size(64)));
SR3D_QINLINE v16f ld16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SR3D_QINLINE v16f fma16(v16f a, v16f b, v16f c) {
  v16f r;
  for (int l = 0; l < 16; ++l) r[l] = __builtin_fmaf(a[l], b[l], c[l]);
  return r;
}

// NX input rows x NW weight rows over the stream (ws: NW dequantized rows, ldw apart).
template <int NX, int NW>
void tile_portable(const float* xs, int64_t ldx, const float* ws, int64_t ldw, int64_t m,
                   int64_t k, const float* bias, int64_t r0, float* y, int64_t ldy) {
  v16f acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = v16f{};
  for (int64_t p = 0; p < m; p += 16) {
    v16f wv[NW];
    for (int j = 0; j < NW; ++j) wv[j] = ld16(ws + j * ldw + p);
    for (int i = 0; i < NX; ++i) {
      const v16f xv = ld16(xs + i * ldx + p);
      for (int j = 0; j < NW; ++j) acc[i][j] = fma16(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      float lanes[16];
      std::memcpy(lanes, &acc[i][j], sizeof lanes);
      y[i * ldy + j] = finish(lanes, xs + i * ldx, m, k, ws + j * ldw, nullptr, r0 + j, bias);
    }
}

#ifdef SR3D_Q_X86
#define SR3D_T512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define SR3D_T2 __attribute__((target("avx2,fma")))

// tree16 in registers from b[l] = a[l] + a[l + 8] (8 lanes): c = b[0..3] + b[4..7], then
// (c0 + c2) + (c1 + c3), the same additions.
SR3D_T2 SR3D_QINLINE float tree8(__m256 b) {
  const __m128 c = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
  const __m128 d = _mm_add_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

// ---- AVX-512 ------------------------------------------------------------------------------
template <int NX, int NW>
SR3D_T512 void tile_512(const float* xs, int64_t ldx, const float* ws, int64_t ldw, int64_t m,
                        int64_t k, const float* bias, int64_t r0, float* y, int64_t ldy) {
  __m512 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < m; p += 16) {
    __m512 wv[NW];
    for (int j = 0; j < NW; ++j) wv[j] = _mm512_loadu_ps(ws + j * ldw + p);
    for (int i = 0; i < NX; ++i) {
      const __m512 xv = _mm512_loadu_ps(xs + i * ldx + p);
      for (int j = 0; j < NW; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, acc[i][j]);
      y[i * ldy + j] = finish(lanes, xs + i * ldx, m, k, ws + j * ldw, nullptr, r0 + j, bias);
    }
}

// Decode: NR weight rows, dequantized in registers. int4 (group % 128 == 0): a 16-entry table
// per group and row, T[v] = s * float(v - z); 64 bytes are loaded as 16 dwords and step t
// looks nibble t of each up with vpermps, which reads only the low 4 bits of its index, so
// the whole unpack is one shift per 16 weights. int8 (group % 16 == 0): s * float(q - z) per
// weight. The next NR-row tile is prefetched while this one is summed.
// kVminusZ[z][v] = float(v - z), exact: an int4 group's table is one multiply by its scale.
struct VMinusZ {
  alignas(64) float v[16][16];
  constexpr VMinusZ() : v() {
    for (int z = 0; z < 16; ++z)
      for (int i = 0; i < 16; ++i) v[z][i] = static_cast<float>(i - z);
  }
};
constexpr VMinusZ kVMinusZTable{};
constexpr const float (&kVminusZ)[16][16] = kVMinusZTable.v;

template <bool Q4, int NR>
SR3D_T512 SR3D_QINLINE void gemv_512(const float* xs, const WeightRef& w, int64_t r,
                                     const float* bias, float* y) {
  const int64_t k = w.cols, G = w.group, ng = k / G, rb = quant_row_bytes(w), m = main_len(w);
  const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * rb;
  const char* pf = reinterpret_cast<const char*>(q + NR * rb);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 acc[NR];
  for (int i = 0; i < NR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0, c = 0; c < m; ++g) {
    const int64_t ge = std::min(m, (g + 1) * G);
    __m512 s[NR];
    __m512i z[NR];
    for (int i = 0; i < NR; ++i) {
      s[i] = _mm512_set1_ps(w.scales[(r + i) * ng + g]);
      const int zi = w.zeros[(r + i) * ng + g];
      if (!Q4) {
        z[i] = _mm512_set1_epi32(zi);
      } else if (zi < 16) {  // the table, float(v - z) read from kVminusZ (the same value)
        s[i] = _mm512_mul_ps(s[i], _mm512_load_ps(kVminusZ[zi]));
      } else {
        s[i] = _mm512_mul_ps(
            s[i], _mm512_cvtepi32_ps(_mm512_sub_epi32(iota, _mm512_set1_epi32(zi))));
      }
    }
    if (Q4) {
      for (; c < ge; c += 128) {
        for (int i = 0; i < NR; ++i) _mm_prefetch(pf + c / 2 * NR + 64 * i, _MM_HINT_T0);
        __m512i d[NR];
        for (int i = 0; i < NR; ++i) d[i] = _mm512_loadu_si512(q + i * rb + c / 2);
        for (int t = 0; t < 8; ++t) {
          const __m512 xv = _mm512_loadu_ps(xs + c + 16 * t);
          for (int i = 0; i < NR; ++i)
            acc[i] = _mm512_fmadd_ps(
                xv, _mm512_permutexvar_ps(_mm512_srli_epi32(d[i], 4 * t), s[i]), acc[i]);
        }
      }
    } else {
      for (; c < ge; c += 16) {
        _mm_prefetch(pf + c * NR, _MM_HINT_T0);
        const __m512 x0 = _mm512_loadu_ps(xs + c);
        for (int i = 0; i < NR; ++i) {
          const __m512i b = _mm512_cvtepu8_epi32(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i * rb + c)));
          const __m512 wv = _mm512_mul_ps(s[i], _mm512_cvtepi32_ps(_mm512_sub_epi32(b, z[i])));
          acc[i] = _mm512_fmadd_ps(x0, wv, acc[i]);
        }
      }
    }
  }
  for (int i = 0; i < NR; ++i) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i]), 1));
    const float t = tree8(_mm256_add_ps(_mm512_castps512_ps256(acc[i]), hi));
    y[r + i] = finish_tree(t, xs, m, k, nullptr, &w, r + i, bias);
  }
}

// Row r in stream order to out (the GEMM's scratch), for the groups gemv_512 takes.
SR3D_T512 void deq_stream_512(const WeightRef& w, int64_t r, float* out) {
  const int64_t k = w.cols, G = w.group, ng = k / G, rb = quant_row_bytes(w);
  const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * rb;
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t g = 0; g < ng; ++g) {
    const __m512 s = _mm512_set1_ps(w.scales[r * ng + g]);
    const __m512i z = _mm512_set1_epi32(w.zeros[r * ng + g]);
    if (w.type == WType::kQ4) {
      const __m512 tab = _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(iota, z)));
      for (int64_t c = g * G; c < (g + 1) * G; c += 128) {
        const __m512i d = _mm512_loadu_si512(q + c / 2);
        for (int t = 0; t < 8; ++t)
          _mm512_storeu_ps(out + c + 16 * t,
                           _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4 * t), tab));
      }
    } else {
      for (int64_t c = g * G; c < (g + 1) * G; c += 16) {
        const __m512i b =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c)));
        _mm512_storeu_ps(out + c, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(b, z))));
      }
    }
  }
}

template <bool Q4>
SR3D_T512 void gemv_rows_512(const float* xs, const WeightRef& w, int64_t r0, int64_t r1,
                             const float* bias, float* y) {
  int64_t r = r0;
  for (; Q4 && r + 8 <= r1; r += 8) gemv_512<Q4, 8>(xs, w, r, bias, y);
  for (; r + 4 <= r1; r += 4) gemv_512<Q4, 4>(xs, w, r, bias, y);
  for (; r < r1; ++r) gemv_512<Q4, 1>(xs, w, r, bias, y);
}

// ---- AVX2 (16 lanes = two registers) ---------------------------------------------------------
template <int NX, int NW>
SR3D_T2 void tile_avx2(const float* xs, int64_t ldx, const float* ws, int64_t ldw, int64_t m,
                       int64_t k, const float* bias, int64_t r0, float* y, int64_t ldy) {
  __m256 acc[NX][NW][2];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < m; p += 16)
    for (int h = 0; h < 2; ++h) {
      __m256 wv[NW];
      for (int j = 0; j < NW; ++j) wv[j] = _mm256_loadu_ps(ws + j * ldw + p + 8 * h);
      for (int i = 0; i < NX; ++i) {
        const __m256 xv = _mm256_loadu_ps(xs + i * ldx + p + 8 * h);
        for (int j = 0; j < NW; ++j) acc[i][j][h] = _mm256_fmadd_ps(xv, wv[j], acc[i][j][h]);
      }
    }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) {
      alignas(32) float lanes[16];
      _mm256_store_ps(lanes, acc[i][j][0]);
      _mm256_store_ps(lanes + 8, acc[i][j][1]);
      y[i * ldy + j] = finish(lanes, xs + i * ldx, m, k, ws + j * ldw, nullptr, r0 + j, bias);
    }
}

// int4 without a table: AVX2's vpermps reads 3 index bits, so a 16-entry table costs two
// permutes, a blend and a second shift per 8 weights (three uops on the one shuffle port of
// Intel cores); s * float(v - z) per weight is the same value in as many ops, none a shuffle.
template <bool Q4, int NR>
SR3D_T2 SR3D_QINLINE void gemv_avx2(const float* xs, const WeightRef& w, int64_t r,
                                    const float* bias, float* y) {
  const int64_t k = w.cols, G = w.group, ng = k / G, rb = quant_row_bytes(w), m = main_len(w);
  const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * rb;
  const char* pf = reinterpret_cast<const char*>(q + NR * rb);
  const __m256i m15 = _mm256_set1_epi32(15);
  __m256 acc[NR][2];
  for (int i = 0; i < NR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t g = 0, c = 0; c < m; ++g) {
    const int64_t ge = std::min(m, (g + 1) * G);
    __m256 s[NR];
    __m256i z[NR];
    for (int i = 0; i < NR; ++i) {
      s[i] = _mm256_set1_ps(w.scales[(r + i) * ng + g]);
      z[i] = _mm256_set1_epi32(w.zeros[(r + i) * ng + g]);
    }
    if (Q4) {
      for (; c < ge; c += 128) {
        for (int i = 0; i < NR; ++i) _mm_prefetch(pf + c / 2 * NR + 64 * i, _MM_HINT_T0);
        for (int i = 0; i < NR; ++i) {
          const uint8_t* qb = q + i * rb + c / 2;
          const __m256i d0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb));
          const __m256i d1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + 32));
          for (int t = 0; t < 8; ++t) {  // nibble t of each dword
            const __m256 w0 = _mm256_mul_ps(s[i], _mm256_cvtepi32_ps(_mm256_sub_epi32(
                _mm256_and_si256(_mm256_srli_epi32(d0, 4 * t), m15), z[i])));
            const __m256 w1 = _mm256_mul_ps(s[i], _mm256_cvtepi32_ps(_mm256_sub_epi32(
                _mm256_and_si256(_mm256_srli_epi32(d1, 4 * t), m15), z[i])));
            acc[i][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xs + c + 16 * t), w0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(_mm256_loadu_ps(xs + c + 16 * t + 8), w1, acc[i][1]);
          }
        }
      }
    } else {
      for (; c < ge; c += 16) {
        _mm_prefetch(pf + c * NR, _MM_HINT_T0);
        const __m256 x0 = _mm256_loadu_ps(xs + c), x1 = _mm256_loadu_ps(xs + c + 8);
        for (int i = 0; i < NR; ++i) {
          const uint8_t* qb = q + i * rb + c;
          const __m128i* qv0 = reinterpret_cast<const __m128i*>(qb);
          const __m128i* qv1 = reinterpret_cast<const __m128i*>(qb + 8);
          const __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qv0));
          const __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qv1));
          const __m256 w0 = _mm256_mul_ps(s[i], _mm256_cvtepi32_ps(_mm256_sub_epi32(b0, z[i])));
          const __m256 w1 = _mm256_mul_ps(s[i], _mm256_cvtepi32_ps(_mm256_sub_epi32(b1, z[i])));
          acc[i][0] = _mm256_fmadd_ps(x0, w0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(x1, w1, acc[i][1]);
        }
      }
    }
  }
  for (int i = 0; i < NR; ++i)
    y[r + i] = finish_tree(tree8(_mm256_add_ps(acc[i][0], acc[i][1])), xs, m, k, nullptr, &w,
                           r + i, bias);
}

template <bool Q4>
SR3D_T2 void gemv_rows_avx2(const float* xs, const WeightRef& w, int64_t r0, int64_t r1,
                            const float* bias, float* y) {
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) gemv_avx2<Q4, 2>(xs, w, r, bias, y);
  for (; r < r1; ++r) gemv_avx2<Q4, 1>(xs, w, r, bias, y);
}
#endif  // SR3D_Q_X86

// 2: AVX-512 (F + VL), 1: AVX2 + FMA, 0: the portable kernels: cpu::x86_isa() (SR3D_CPU_ISA
// caps it as for the other fast paths); set_quant_isa (tests) lowers it further.
int g_isa_override = -1;
int best_isa() {
#ifdef SR3D_Q_X86
  return cpu::x86_isa();
#else
  return 0;
#endif
}
int quant_isa() { return g_isa_override >= 0 ? std::min(g_isa_override, best_isa()) : best_isa(); }

// Tiles of the GEMM: NX input rows x NW weight rows per ISA (registers: AVX-512 16 of its 32
// zmm accumulate, AVX2 12 of 16 ymm, the portable one as the float kernels).
template <int NX, int NW>
void tile_isa(int isa, const float* xs, int64_t ldx, const float* ws, int64_t ldw, int64_t m,
              int64_t k, const float* bias, int64_t r0, float* y, int64_t ldy) {
#ifdef SR3D_Q_X86
  if (isa == 2) return tile_512<NX, NW>(xs, ldx, ws, ldw, m, k, bias, r0, y, ldy);
  if (isa == 1) return tile_avx2<NX, NW>(xs, ldx, ws, ldw, m, k, bias, r0, y, ldy);
#endif
  (void)isa;
  tile_portable<NX, NW>(xs, ldx, ws, ldw, m, k, bias, r0, y, ldy);
}

template <int NX, int NW>
void tiles(int isa, const float* xs, int64_t n, int64_t k, int64_t m, const float* ws,
           int64_t nw, const float* bias, int64_t r0, float* y, int64_t ldy) {
  int64_t i = 0;
  if (nw == NW) {
    for (; i + NX <= n; i += NX)
      tile_isa<NX, NW>(isa, xs + i * k, k, ws, k, m, k, bias, r0, y + i * ldy, ldy);
    for (; i < n; ++i) tile_isa<1, NW>(isa, xs + i * k, k, ws, k, m, k, bias, r0, y + i * ldy, ldy);
    return;
  }
  for (int64_t j = 0; j < nw; ++j) {
    const float* wj = ws + j * k;
    for (i = 0; i + NX <= n; i += NX)
      tile_isa<NX, 1>(isa, xs + i * k, k, wj, k, m, k, bias, r0 + j, y + i * ldy + j, ldy);
    for (; i < n; ++i)
      tile_isa<1, 1>(isa, xs + i * k, k, wj, k, m, k, bias, r0 + j, y + i * ldy + j, ldy);
  }
}

// Per-thread float scratch.
struct Scratch {
  std::vector<float> v;
  float* get(int64_t n) {
    if (v.size() < static_cast<size_t>(n) + 16) v.resize(static_cast<size_t>(n) + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  }
};

// Rows [r0, r1) of y (n x w.rows) from xs (stream order).
void rows_q(int isa, const float* xs, int64_t n, const WeightRef& w, int64_t r0, int64_t r1,
            const float* bias, float* y) {
  const int64_t k = w.cols, m = main_len(w);
  const bool q4 = w.type == WType::kQ4;
  // Groups made of whole blocks: the in-register kernels' case.
  const bool aligned = w.group % (q4 ? 128 : 16) == 0;
  (void)aligned;
#ifdef SR3D_Q_X86
  if (n == 1 && isa > 0 && aligned) {
    if (isa == 2 && q4) return gemv_rows_512<true>(xs, w, r0, r1, bias, y);
    if (isa == 2) return gemv_rows_512<false>(xs, w, r0, r1, bias, y);
    if (q4) return gemv_rows_avx2<true>(xs, w, r0, r1, bias, y);
    return gemv_rows_avx2<false>(xs, w, r0, r1, bias, y);
  }
#endif
  // Input rows per pass: their stream (nb * k floats) stays in L2 while the chunk's weights
  // are dequantized, a few rows at a time, once per pass.
  const int64_t nb = std::min(n, std::max<int64_t>(8, (256 << 10) / (4 * k)));
  constexpr int NW = 4;
  thread_local Scratch wbuf;
  float* ws = wbuf.get(NW * k);
  for (int64_t i0 = 0; i0 < n; i0 += nb) {
    const int64_t cnt = std::min(nb, n - i0);
    for (int64_t r = r0; r < r1; r += NW) {
      const int64_t nw = std::min<int64_t>(NW, r1 - r);
      for (int64_t j = 0; j < nw; ++j) {
#ifdef SR3D_Q_X86
        if (isa == 2 && aligned) {
          deq_stream_512(w, r + j, ws + j * k);
          continue;
        }
#endif
        deq_stream(w, r + j, ws + j * k);
      }
      const float* xb = xs + i0 * k;
      float* yb = y + i0 * w.rows + r;
      if (isa == 2) {
        tiles<4, NW>(isa, xb, cnt, k, m, ws, nw, bias, r, yb, w.rows);
        continue;
      }
      for (int64_t j = 0; j < nw; j += 2) {
        const int64_t c2 = std::min<int64_t>(2, nw - j);
        if (isa == 1) tiles<3, 2>(isa, xb, cnt, k, m, ws + j * k, c2, bias, r + j, yb + j, w.rows);
        else tiles<4, 2>(isa, xb, cnt, k, m, ws + j * k, c2, bias, r + j, yb + j, w.rows);
      }
    }
  }
}

}  // namespace

int set_quant_isa(int isa) {
  g_isa_override = isa;
  return quant_isa();
}

void linear_q_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                   float* const* ys, int count) {
  const int isa = quant_isa();
  const int64_t k = ws[0].cols;
  // One stream of x per distinct (type, perm): q/k/v or gate/up share theirs.
  thread_local std::vector<Scratch> xbufs;
  if (xbufs.size() < static_cast<size_t>(count)) xbufs.resize(static_cast<size_t>(count));
  std::vector<const float*> xs(static_cast<size_t>(count));
  int64_t total = 0, bytes = 0;
  for (int i = 0; i < count; ++i) {
    const WeightRef& w = ws[i];
    total += w.rows;
    bytes += w.rows * (quant_row_bytes(w) + 5 * (w.cols / w.group));
    for (int j = 0; j < i && !xs[i]; ++j)
      if (ws[j].type == w.type && ws[j].perm == w.perm) xs[i] = xs[j];
    if (xs[i]) continue;
    float* b = xbufs[static_cast<size_t>(i)].get(n * k);
    make_xs(x, n, w, b);
    xs[i] = b;
  }
  parallel_for(total, linear_chunk_count(n, total, bytes, n * total * k), [&](int, int64_t b, int64_t e) {
    for_rows_in(ws, count, b, e, [&](int i, int64_t lo, int64_t hi) {
      rows_q(isa, xs[static_cast<size_t>(i)], n, ws[i], lo, hi, biases[i], ys[i]);
    });
  });
}

}  // namespace cpu
}  // namespace sr3d
