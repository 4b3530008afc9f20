#include "../canonicalize.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "simd.h"

namespace sr3d {

void canonicalize_check(const CanonicalizeArgs& a) {
  if (a.n < 0) throw_invalid_argument("a non-negative point count", "points", std::to_string(a.n));
  if (a.mode == CanonicalMode::kIsotropic && !(a.quantile >= 0 && a.quantile < 0.5))
    throw_invalid_argument("a quantile in [0, 0.5)", "quantile", format_number(a.quantile));
  if (a.n > 0 && (!a.points || !a.points_out)) throw_internal("canonicalize: null buffer");
}

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

[[noreturn]] void throw_no_valid_points() {
  throw_invalid_argument("at least one valid point (all three coordinates finite)", "points",
                         "none: every point is NaN/Inf or the scene is empty (use mode 'metric' "
                         "or check the depth and its scale)");
}

}  // namespace

namespace cpu {

QuantilePos quantile_pos(double q, int64_t n) {
  double pos = q * static_cast<double>(n - 1);
  double fl = std::floor(pos);
  QuantilePos p;
  p.k = static_cast<int64_t>(fl);
  p.k2 = std::min(p.k + 1, n - 1);
  p.frac = pos - fl;
  return p;
}

double lerp_quantile(double a, double b, double frac) { return a + (b - a) * frac; }

void select2(std::vector<float>& v, int64_t k, int64_t k2, float* a, float* b) {
  std::nth_element(v.begin(), v.begin() + k, v.end());
  *a = v[k];
  *b = k2 == k ? *a : *std::min_element(v.begin() + k + 1, v.end());
}

CanonicalTransform transform_from_box(CanonicalMode mode, const double lo[3], const double hi[3],
                                      int64_t valid_count) {
  CanonicalTransform t;
  t.valid_count = valid_count;
  if (mode == CanonicalMode::kMetric) return t;
  if (valid_count == 0) throw_no_valid_points();
  if (mode == CanonicalMode::kMinMax) {
    for (int a = 0; a < 3; ++a) {
      t.center[a] = lo[a];
      double e = hi[a] - lo[a];
      t.scale[a] = e > 0 ? e : 1.0;
    }
    return t;
  }
  double s = 0;
  for (int a = 0; a < 3; ++a) {
    t.center[a] = 0.5 * (lo[a] + hi[a]);
    s = std::max(s, 0.5 * (hi[a] - lo[a]));
  }
  if (!(s > 0)) s = 1.0;
  for (int a = 0; a < 3; ++a) t.scale[a] = s;
  return t;
}

// Reference: gather, sort, interpolate. Obvious and O(n log n).
CanonicalTransform canonicalize_reference(const CanonicalizeArgs& a) {
  std::vector<float> v[3];
  for (int64_t i = 0; i < a.n; ++i) {
    const float* p = a.points + 3 * i;
    if (std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]))
      for (int ax = 0; ax < 3; ++ax) v[ax].push_back(p[ax]);
  }
  const int64_t n = static_cast<int64_t>(v[0].size());
  double lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};
  if (n > 0 && a.mode != CanonicalMode::kMetric) {
    double q = a.mode == CanonicalMode::kIsotropic ? a.quantile : 0.0;
    QuantilePos pl = quantile_pos(q, n), ph = quantile_pos(1.0 - q, n);
    for (int ax = 0; ax < 3; ++ax) {
      std::sort(v[ax].begin(), v[ax].end());
      lo[ax] = lerp_quantile(v[ax][pl.k], v[ax][pl.k2], pl.frac);
      hi[ax] = lerp_quantile(v[ax][ph.k], v[ax][ph.k2], ph.frac);
    }
  }
  CanonicalTransform t = transform_from_box(a.mode, lo, hi, n);
  float cf[3], inv[3];
  for (int ax = 0; ax < 3; ++ax) {
    cf[ax] = static_cast<float>(t.center[ax]);
    inv[ax] = static_cast<float>(1.0 / t.scale[ax]);
  }
  for (int64_t i = 0; i < a.n; ++i) {
    const float* p = a.points + 3 * i;
    bool ok = std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
    for (int ax = 0; ax < 3; ++ax)
      a.points_out[3 * i + ax] = ok ? (p[ax] - cf[ax]) * inv[ax] : kNaN;
  }
  return t;
}

namespace {

// Lane-parallel accumulators: 16 independent min/max chains let the compiler use vector
// compares/blends (a single running min is a serial dependency chain, and NaN-aware
// min/max does not auto-vectorize as a reduction).
constexpr int kLanes = 16;
struct AxisStats {
  float mn[kLanes], mx[kLanes];
  AxisStats() {
    for (int j = 0; j < kLanes; ++j) { mn[j] = kInf; mx[j] = -kInf; }
  }
};

// GCC/clang vector extensions: one 16-wide min/max chain that every clone lowers to its
// widest registers (4 SSE ops in the baseline clone). NaN compares false, so it is skipped.
typedef float v16f __attribute__((vector_size(64)));

SR3D_TARGET_CLONES
void block_minmax(const float* __restrict v, int64_t n, float* __restrict mn,
                  float* __restrict mx) {
  v16f lo, hi;
  std::memcpy(&lo, mn, sizeof lo);
  std::memcpy(&hi, mx, sizeof hi);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16f x;
    std::memcpy(&x, v + i, sizeof x);
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  std::memcpy(mn, &lo, sizeof lo);
  std::memcpy(mx, &hi, sizeof hi);
  for (int j = 0; i < n; ++i, ++j) {
    float x = v[i];
    mn[j] = x < mn[j] ? x : mn[j];
    mx[j] = x > mx[j] ? x : mx[j];
  }
}

SR3D_TARGET_CLONES
int64_t block_count_valid(const float* __restrict v, int64_t n) {
  int32_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += v[i] == v[i];
  return c;
}

// Both brackets of one axis in one sweep: counts v < lo0 and v < lo1, and flags
// bit0 = lo0 <= v <= hi0, bit1 = lo1 <= v <= hi1 (NaN: nothing).
// Returns how many values are flagged, so the gather can skip the block or stop early.
SR3D_TARGET_CLONES
int32_t block_bracket2(const float* __restrict v, int64_t n, float lo0, float hi0, float lo1,
                       float hi1, int64_t* below0, int64_t* below1, uint8_t* __restrict flags) {
  int32_t b0 = 0, b1 = 0, in = 0;
  for (int64_t i = 0; i < n; ++i) {
    float x = v[i];
    b0 += x < lo0;
    b1 += x < lo1;
    int32_t f0 = (x >= lo0) & (x <= hi0), f1 = (x >= lo1) & (x <= hi1);
    in += f0 | f1;
    flags[i] = static_cast<uint8_t>(f0 | (f1 << 1));
  }
  *below0 += b0;
  *below1 += b1;
  return in;
}

// Appends the `count` flagged values: candidates are rare, so skip 8 clear flags at a
// time and stop once all are found.
void gather_flagged(const float* v, const uint8_t* flags, int64_t n, int32_t count,
                    std::vector<float>& out0, std::vector<float>& out1) {
  for (int64_t i = 0; count > 0 && i < n; i += 8) {
    const int64_t m = std::min<int64_t>(8, n - i);
    if (m == 8) {  // a fixed-size load (a variable-size memcpy would be a library call)
      uint64_t w;
      std::memcpy(&w, flags + i, 8);
      if (!w) continue;
    }
    for (int64_t j = 0; j < m; ++j) {
      const uint8_t f = flags[i + j];
      if (!f) continue;
      if (f & 1) out0.push_back(v[i + j]);
      if (f & 2) out1.push_back(v[i + j]);
      --count;
    }
  }
}

// The bracket sweep of one axis: counts v < lo0 and v < lo1 and appends the values inside
// [lo0, hi0] to out0 and inside [lo1, hi1] to out1 (NaN: nothing). "x >= lo" is computed as
// !(x < lo), which is the same for every non-NaN x and false-safe for NaN (x <= hi fails).
using BracketFn = void (*)(const float* v, int64_t n, float lo0, float hi0, float lo1, float hi1,
                           int64_t* below0, int64_t* below1, std::vector<float>& out0,
                           std::vector<float>& out1);

void bracket_portable(const float* v, int64_t n, float lo0, float hi0, float lo1, float hi1,
                      int64_t* below0, int64_t* below1, std::vector<float>& out0,
                      std::vector<float>& out1) {
  thread_local std::vector<uint8_t> flags;
  if (static_cast<int64_t>(flags.size()) < n) flags.resize(n);
  int32_t in = block_bracket2(v, n, lo0, hi0, lo1, hi1, below0, below1, flags.data());
  if (in) gather_flagged(v, flags.data(), n, in, out0, out1);
}

inline void push_candidate(float x, float lo0, float hi0, float lo1, float hi1,
                           std::vector<float>& out0, std::vector<float>& out1) {
  if (!(x < lo0) && x <= hi0) out0.push_back(x);
  if (!(x < lo1) && x <= hi1) out1.push_back(x);
}

// The vector sweeps' scalar tail [i, n), then their counts s0 / s1 added to below0 / below1.
inline void bracket_tail(const float* v, int64_t i, int64_t n, float lo0, float hi0, float lo1,
                         float hi1, int64_t s0, int64_t s1, int64_t* below0, int64_t* below1,
                         std::vector<float>& out0, std::vector<float>& out1) {
  for (; i < n; ++i) {
    const float x = v[i];
    s0 += x < lo0;
    s1 += x < lo1;
    push_candidate(x, lo0, hi0, lo1, hi1, out0, out1);
  }
  *below0 += s0;
  *below1 += s1;
}

#if defined(__x86_64__) && defined(__GNUC__)
// AVX2: compare 8 at a time, count with mask subtraction, and find the rare candidates
// through a movemask (no flag array, no scan).
__attribute__((target("avx2"))) void bracket_avx2(const float* v, int64_t n, float lo0,
                                                  float hi0, float lo1, float hi1,
                                                  int64_t* below0, int64_t* below1,
                                                  std::vector<float>& out0,
                                                  std::vector<float>& out1) {
  const __m256 l0 = _mm256_set1_ps(lo0), h0 = _mm256_set1_ps(hi0), l1 = _mm256_set1_ps(lo1),
               h1 = _mm256_set1_ps(hi1);
  __m256i b0 = _mm256_setzero_si256(), b1 = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    const __m256 lt0 = _mm256_cmp_ps(x, l0, _CMP_LT_OQ), lt1 = _mm256_cmp_ps(x, l1, _CMP_LT_OQ);
    const __m256 le0 = _mm256_cmp_ps(x, h0, _CMP_LE_OQ), le1 = _mm256_cmp_ps(x, h1, _CMP_LE_OQ);
    b0 = _mm256_sub_epi32(b0, _mm256_castps_si256(lt0));
    b1 = _mm256_sub_epi32(b1, _mm256_castps_si256(lt1));
    int m = _mm256_movemask_ps(_mm256_or_ps(_mm256_andnot_ps(lt0, le0), _mm256_andnot_ps(lt1, le1)));
    while (m) {
      push_candidate(v[i + __builtin_ctz(m)], lo0, hi0, lo1, hi1, out0, out1);
      m &= m - 1;
    }
  }
  alignas(32) int32_t c0[8], c1[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(c0), b0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(c1), b1);
  int64_t s0 = 0, s1 = 0;
  for (int j = 0; j < 8; ++j) { s0 += c0[j]; s1 += c1[j]; }
  bracket_tail(v, i, n, lo0, hi0, lo1, hi1, s0, s1, below0, below1, out0, out1);
}

// AVX-512: the compares give bit masks directly; counts are popcounts.
__attribute__((target("avx512f,popcnt"))) void bracket_avx512(const float* v, int64_t n,
                                                               float lo0, float hi0, float lo1,
                                                               float hi1, int64_t* below0,
                                                               int64_t* below1,
                                                               std::vector<float>& out0,
                                                               std::vector<float>& out1) {
  const __m512 l0 = _mm512_set1_ps(lo0), h0 = _mm512_set1_ps(hi0), l1 = _mm512_set1_ps(lo1),
               h1 = _mm512_set1_ps(hi1);
  int64_t s0 = 0, s1 = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(v + i);
    const __mmask16 lt0 = _mm512_cmp_ps_mask(x, l0, _CMP_LT_OQ);
    const __mmask16 lt1 = _mm512_cmp_ps_mask(x, l1, _CMP_LT_OQ);
    const __mmask16 le0 = _mm512_cmp_ps_mask(x, h0, _CMP_LE_OQ);
    const __mmask16 le1 = _mm512_cmp_ps_mask(x, h1, _CMP_LE_OQ);
    s0 += __builtin_popcount(lt0);
    s1 += __builtin_popcount(lt1);
    unsigned m = (le0 & ~lt0 & 0xFFFFu) | (le1 & ~lt1 & 0xFFFFu);
    while (m) {
      push_candidate(v[i + __builtin_ctz(m)], lo0, hi0, lo1, hi1, out0, out1);
      m &= m - 1;
    }
  }
  bracket_tail(v, i, n, lo0, hi0, lo1, hi1, s0, s1, below0, below1, out0, out1);
}
#endif

#if defined(__aarch64__)
// NEON: bracket_avx2 on 4 lanes (vclt / vcle are the same ordered compares: NaN is neither);
// a horizontal max of the "inside either bracket" mask finds the rare candidate quads, whose
// lanes then go through push_candidate in index order, as every variant appends them.
void bracket_neon(const float* v, int64_t n, float lo0, float hi0, float lo1, float hi1,
                  int64_t* below0, int64_t* below1, std::vector<float>& out0,
                  std::vector<float>& out1) {
  const float32x4_t l0 = vdupq_n_f32(lo0), h0 = vdupq_n_f32(hi0), l1 = vdupq_n_f32(lo1),
                    h1 = vdupq_n_f32(hi1);
  uint32x4_t b0 = vdupq_n_u32(0), b1 = vdupq_n_u32(0);  // lane counts: a true compare is ~0u
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t x = vld1q_f32(v + i);
    const uint32x4_t lt0 = vcltq_f32(x, l0), lt1 = vcltq_f32(x, l1);
    const uint32x4_t le0 = vcleq_f32(x, h0), le1 = vcleq_f32(x, h1);
    b0 = vsubq_u32(b0, lt0);
    b1 = vsubq_u32(b1, lt1);
    if (vmaxvq_u32(vorrq_u32(vbicq_u32(le0, lt0), vbicq_u32(le1, lt1))))
      for (int j = 0; j < 4; ++j) push_candidate(v[i + j], lo0, hi0, lo1, hi1, out0, out1);
  }
  int64_t s0 = static_cast<int64_t>(vaddlvq_u32(b0)), s1 = static_cast<int64_t>(vaddlvq_u32(b1));
  bracket_tail(v, i, n, lo0, hi0, lo1, hi1, s0, s1, below0, below1, out0, out1);
}
#endif

// SR3D_CPU_ISA=portable|avx2 caps the choice (tests run every variant this way).
BracketFn pick_bracket() {
#if defined(__aarch64__)
  if (cpu_neon()) return bracket_neon;
#endif
#if defined(__x86_64__) && defined(__GNUC__)
  // AVX-512F implies POPCNT on every CPU that has it (x86_isa asks for F + VL).
  if (cpu::x86_isa() >= 2) return bracket_avx512;
  if (cpu::x86_isa() >= 1) return bracket_avx2;
#endif
  return bracket_portable;
}
const BracketFn bracket_sweep = pick_bracket();

// One order-statistic target: ranks k, k2 of one axis, searched inside [lo, hi].
struct Target {
  QuantilePos pos;
  float lo = -kInf, hi = kInf;
  bool done = false;
  double value = 0;
};


// Per-thread state of one sweep.
struct Sweep {
  int64_t count = 0;
  AxisStats axis[3];
  int64_t below[6] = {0, 0, 0, 0, 0, 0};
  std::vector<float> cand[6];
};

}  // namespace

// Passes over the source (each recomputes the points; nothing is stored):
//   0. (quantile only) a sample of ~32K points in short strided runs -> a bracket around
//      every needed rank (for n <= 32K the brackets are infinite: everything is gathered);
//   1. one fused sweep: valid count, min/max, and per bracket the count below it and the
//      candidates inside it;
//   2. only for a rank that fell outside its bracket (rare): the same sweep again with that
//      bracket widened to the whole range.
// Exact: the ranks are selected from the gathered candidates with nth_element.
CanonicalTransform reduce_points(const PointBlockFn& source, int64_t n, int64_t block,
                                 CanonicalMode mode, double quantile,
                                 const ReduceTuning& tuning) {
  const int64_t sample = tuning.sample;
  int* sweeps_done = tuning.sweeps_done;
  if (sweeps_done) *sweeps_done = 0;
  if (mode == CanonicalMode::kMetric) return CanonicalTransform{};
  const bool need_quantile = mode == CanonicalMode::kIsotropic && quantile > 0;
  block = std::max<int64_t>(1, block);
  const int64_t nblocks = (n + block - 1) / block;
  const int threads = cpu_threads();


  Target targets[6];  // axis a: [2a] = Q(q), [2a+1] = Q(1-q)
  // The default sample (32K) balances the sample + bracket cost against the candidates to select.
  if (need_quantile && n > sample) {
    // Runs of 16 neighbours, one at a hashed offset inside each of sample/16 equal strides
    // (~sample points). The hash matters: an even stride aliases with the row length and
    // samples only a few columns, whose x differs from the scene's.
    const int64_t run = std::min<int64_t>(16, block), runs = std::max<int64_t>(1, sample / 16);
    const int64_t stride = n / runs;
    std::vector<std::vector<float>> samp(threads * 3);
    parallel_for(runs, threads, [&](int c, int64_t r0, int64_t r1) {
      RowBuffer buf(run);
      for (int64_t r = r0; r < r1; ++r) {
        uint64_t h = static_cast<uint64_t>(r + 1) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        int64_t begin = r * stride + static_cast<int64_t>(h % static_cast<uint64_t>(stride));
        int64_t block_end = std::min(n, (begin / block + 1) * block);
        int64_t cnt = std::min(run, block_end - begin);
        source(begin, cnt, buf.x, buf.y, buf.z);
        for (int64_t i = 0; i < cnt; ++i)
          if (buf.x[i] == buf.x[i]) {  // invalid points are NaN on all three axes
            samp[c * 3].push_back(buf.x[i]);
            samp[c * 3 + 1].push_back(buf.y[i]);
            samp[c * 3 + 2].push_back(buf.z[i]);
          }
      }
    });
    // The axes in parallel. Per side, one selection over the whole sample for the bound
    // nearer the middle, then one inside the small tail it leaves for the outer bound.
    parallel_for(3, 3, [&](int, int64_t a0, int64_t a1) {
      for (int64_t a = a0; a < a1; ++a) {
        std::vector<float> s;
        for (int c = 0; c < threads; ++c)
          s.insert(s.end(), samp[c * 3 + a].begin(), samp[c * 3 + a].end());
        const int64_t sv = static_cast<int64_t>(s.size());
        if (sv == 0) continue;  // brackets stay infinite: the sweep gathers everything
        for (int side = 0; side < 2; ++side) {
          const double p = side == 0 ? quantile : 1.0 - quantile;
          // +-5 sigma of the binomial rank error, + slack for the runs' correlation.
          const double j = p * static_cast<double>(sv - 1);
          const double d = tuning.margin * (5.0 * std::sqrt(static_cast<double>(sv) * p * (1 - p)) + 64);
          const int64_t jl = static_cast<int64_t>(std::floor(j - d));
          const int64_t jh = static_cast<int64_t>(std::ceil(j + d)) + 1;
          Target& t = targets[2 * a + side];
          if (side == 0) {  // low quantile: jh splits off the low tail that holds jl
            if (jh < sv) { std::nth_element(s.begin(), s.begin() + jh, s.end()); t.hi = s[jh]; }
            if (jl >= 0) {
              auto end = jh < sv ? s.begin() + jh : s.end();
              std::nth_element(s.begin(), s.begin() + jl, end);
              t.lo = s[jl];
            }
          } else {  // high quantile: jl splits off the high tail that holds jh
            if (jl >= 0) { std::nth_element(s.begin(), s.begin() + jl, s.end()); t.lo = s[jl]; }
            if (jh < sv) {
              auto begin = jl >= 0 ? s.begin() + jl + 1 : s.begin();
              std::nth_element(begin, s.begin() + jh, s.end());
              t.hi = s[jh];
            }
          }
        }
      }
    });
  }

  int64_t nv = 0;
  double lo[3], hi[3];
  const int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Sweep> sweeps(threads);
    const bool first = round == 0;
    parallel_for(nblocks, threads, [&](int c, int64_t b0, int64_t b1) {
      RowBuffer buf(block);
      Sweep& s = sweeps[c];
      for (int64_t b = b0; b < b1; ++b) {
        int64_t begin = b * block, cnt = std::min(block, n - begin);
        source(begin, cnt, buf.x, buf.y, buf.z);
        const float* axes[3] = {buf.x, buf.y, buf.z};
        if (first) {
          s.count += block_count_valid(buf.x, cnt);
          for (int a = 0; a < 3; ++a) block_minmax(axes[a], cnt, s.axis[a].mn, s.axis[a].mx);
        }
        if (!need_quantile) continue;
        for (int a = 0; a < 3; ++a) {
          const Target &t0 = targets[2 * a], &t1 = targets[2 * a + 1];
          if (t0.done && t1.done) continue;
          // A finished target gets an empty bracket (lo > hi) so it gathers nothing.
          float lo0 = t0.done ? kInf : t0.lo, hi0 = t0.done ? -kInf : t0.hi;
          float lo1 = t1.done ? kInf : t1.lo, hi1 = t1.done ? -kInf : t1.hi;
          bracket_sweep(axes[a], cnt, lo0, hi0, lo1, hi1, &s.below[2 * a], &s.below[2 * a + 1],
                        s.cand[2 * a], s.cand[2 * a + 1]);
        }
      }
    });
    if (sweeps_done) ++*sweeps_done;
    if (first) {
      float mn[3] = {kInf, kInf, kInf}, mx[3] = {-kInf, -kInf, -kInf};
      for (const Sweep& s : sweeps) {
        nv += s.count;
        for (int a = 0; a < 3; ++a)
          for (int j = 0; j < kLanes; ++j) {
            mn[a] = std::min(mn[a], s.axis[a].mn[j]);
            mx[a] = std::max(mx[a], s.axis[a].mx[j]);
          }
      }
      // Through lerp_quantile like every quantile (the reference's q = 0 path): it maps -0
      // to +0, so which zero min/max kept (order-dependent) cannot change the result.
      for (int a = 0; a < 3; ++a) {
        lo[a] = lerp_quantile(mn[a], mn[a], 0.0);
        hi[a] = lerp_quantile(mx[a], mx[a], 0.0);
      }
      if (!need_quantile || nv == 0) return transform_from_box(mode, lo, hi, nv);
      for (int k = 0; k < 6; ++k) targets[k].pos = quantile_pos(k % 2 == 0 ? quantile : 1.0 - quantile, nv);
    }
    bool retry[6] = {false, false, false, false, false, false};
    parallel_for(6, 6, [&](int, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      Target& t = targets[k];
      if (t.done) continue;
      int64_t below = 0;
      std::vector<float> cand;
      for (Sweep& s : sweeps) {
        below += s.below[k];
        cand.insert(cand.end(), s.cand[k].begin(), s.cand[k].end());
      }
      const int64_t in_count = static_cast<int64_t>(cand.size());
      if (below <= t.pos.k && t.pos.k2 < below + in_count) {
        float x, y;
        select2(cand, t.pos.k - below, t.pos.k2 - below, &x, &y);
        t.value = lerp_quantile(x, y, t.pos.frac);
        t.done = true;
      } else {
        // The counts say on which side the rank lies: move the bracket there, 4x wider,
        // and open it to infinity on the last retry so the sweep must succeed.
        const bool last = round + 2 >= kRounds;
        const float w = 4.0f * (t.hi - t.lo);
        const bool finite_w = w > 0 && w <= std::numeric_limits<float>::max();
        if (below > t.pos.k) {
          t.hi = t.lo;
          t.lo = last || !finite_w ? -kInf : t.lo - w;
        } else {
          t.lo = t.hi;
          t.hi = last || !finite_w ? kInf : t.hi + w;
        }
        retry[k] = true;
      }
    }
    });
    bool all_done = true;
    for (bool r : retry) all_done = all_done && !r;
    if (all_done) break;
  }
  for (const Target& t : targets)
    if (!t.done) throw_internal("canonicalize: quantile selection did not converge");
  for (int a = 0; a < 3; ++a) {
    lo[a] = targets[2 * a].value;
    hi[a] = targets[2 * a + 1].value;
  }
  return transform_from_box(mode, lo, hi, nv);
}

SR3D_TARGET_CLONES
void deinterleave_valid(const float* __restrict p, int64_t n, float* __restrict x,
                        float* __restrict y, float* __restrict z) {
  for (int64_t i = 0; i < n; ++i) {
    float a = p[3 * i], b = p[3 * i + 1], c = p[3 * i + 2];
    // finite <=> |v| <= FLT_MAX (NaN compares false)
    bool ok = (std::fabs(a) <= std::numeric_limits<float>::max()) &
              (std::fabs(b) <= std::numeric_limits<float>::max()) &
              (std::fabs(c) <= std::numeric_limits<float>::max());
    x[i] = ok ? a : kNaN;
    y[i] = ok ? b : kNaN;
    z[i] = ok ? c : kNaN;
  }
}

// Returns the number of valid points (metric mode reports its count from this pass).
SR3D_TARGET_CLONES
int64_t apply_block(const float* __restrict p, int64_t n, const float* c, const float* inv,
                    float* __restrict out) {
  const float c0 = c[0], c1 = c[1], c2 = c[2], i0 = inv[0], i1 = inv[1], i2 = inv[2];
  const float fmax = std::numeric_limits<float>::max();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    float a = p[3 * i], b = p[3 * i + 1], d = p[3 * i + 2];
    bool ok = (std::fabs(a) <= fmax) & (std::fabs(b) <= fmax) & (std::fabs(d) <= fmax);
    count += ok;
    out[3 * i] = ok ? (a - c0) * i0 : kNaN;
    out[3 * i + 1] = ok ? (b - c1) * i1 : kNaN;
    out[3 * i + 2] = ok ? (d - c2) * i2 : kNaN;
  }
  return count;
}

CanonicalTransform canonicalize_fast(const CanonicalizeArgs& a) {
  const float* pts = a.points;
  CanonicalTransform t = reduce_points(
      [pts](int64_t begin, int64_t count, float* x, float* y, float* z) {
        deinterleave_valid(pts + 3 * begin, count, x, y, z);
      },
      a.n, 4096, a.mode, a.quantile);
  int64_t valid = canonical_apply(a.points, a.n, t, a.points_out, Impl::kFast);
  if (a.mode == CanonicalMode::kMetric) t.valid_count = valid;
  return t;
}

}  // namespace cpu

int64_t canonical_apply(const float* points, int64_t n, const CanonicalTransform& t, float* out,
                        Impl impl) {
  float c[3], inv[3];
  for (int a = 0; a < 3; ++a) {
    c[a] = static_cast<float>(t.center[a]);
    inv[a] = static_cast<float>(1.0 / t.scale[a]);
  }
  if (impl == Impl::kReference) return cpu::apply_block(points, n, c, inv, out);
  std::vector<int64_t> counts(cpu_threads(), 0);
  parallel_for(n, cpu_threads(), [&](int chunk, int64_t b, int64_t e) {
    counts[chunk] = cpu::apply_block(points + 3 * b, e - b, c, inv, out + 3 * b);
  });
  int64_t total = 0;
  for (int64_t c2 : counts) total += c2;
  return total;
}

CanonicalTransform canonicalize(const CanonicalizeArgs& a, Impl impl) {
  canonicalize_check(a);
  return run_impl(
      impl, [&] { return cpu::canonicalize_reference(a); },
      [&] { return cpu::canonicalize_fast(a); },
      SR3D_CUDA_PATH(cuda::canonicalize_host(a)));
}

}  // namespace sr3d
