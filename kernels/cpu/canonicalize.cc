#include "../canonicalize.h"

#include <algorithm>
#include <cstring>
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

// numpy 'linear' quantile position over n sorted values: ranks k and k2 = min(k+1, n-1),
// value = a[k] + (a[k2] - a[k]) * frac.
struct QuantilePos {
  int64_t k, k2;
  double frac;
};
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

[[noreturn]] void throw_no_valid_points() {
  throw_invalid_argument("at least one valid point (all three coordinates finite)", "points",
                         "none: every point is NaN/Inf or the scene is empty (use mode 'metric' "
                         "or check the depth and its scale)");
}

}  // namespace

namespace cpu {

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

struct Stats {
  int64_t count = 0;
  float mn[3] = {kInf, kInf, kInf};
  float mx[3] = {-kInf, -kInf, -kInf};
};

SR3D_TARGET_CLONES
void block_stats(const float* __restrict v, int64_t n, float* mn, float* mx) {
  float lo = *mn, hi = *mx;
  for (int64_t i = 0; i < n; ++i) {
    lo = v[i] < lo ? v[i] : lo;  // NaN compares false: skipped
    hi = v[i] > hi ? v[i] : hi;
  }
  *mn = lo;
  *mx = hi;
}

SR3D_TARGET_CLONES
int64_t block_count_valid(const float* __restrict v, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += v[i] == v[i];
  return c;
}

// Counts v < lo and marks lo <= v <= hi (NaN: neither).
SR3D_TARGET_CLONES
int64_t block_bracket(const float* __restrict v, int64_t n, float lo, float hi,
                      uint8_t* __restrict in) {
  int64_t below = 0;
  for (int64_t i = 0; i < n; ++i) {
    below += v[i] < lo;
    in[i] = (v[i] >= lo) & (v[i] <= hi);
  }
  return below;
}

void gather_marked(const float* v, const uint8_t* in, int64_t n, std::vector<float>& out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, in + i, 8);
    if (!w) continue;  // candidates are rare (< 1%): skip 8 at a time
    for (int j = 0; j < 8; ++j)
      if (in[i + j]) out.push_back(v[i + j]);
  }
  for (; i < n; ++i)
    if (in[i]) out.push_back(v[i]);
}

// One order-statistic target: ranks k, k2 of one axis, searched inside [lo, hi].
struct Target {
  int axis;
  QuantilePos pos;
  float lo = -kInf, hi = kInf;
  int64_t below = 0;
  std::vector<float> cand;
  bool done = false;
  double value = 0;
};

// Exact select of ranks k, k2 (k2 = k or k+1) from an unsorted vector.
void select2(std::vector<float>& v, int64_t k, int64_t k2, float* a, float* b) {
  std::nth_element(v.begin(), v.begin() + k, v.end());
  *a = v[k];
  *b = k2 == k ? *a : *std::min_element(v.begin() + k + 1, v.end());
}

}  // namespace

CanonicalTransform reduce_points(const PointBlockFn& source, int64_t n, int64_t block,
                                 CanonicalMode mode, double quantile) {
  if (mode == CanonicalMode::kMetric) return CanonicalTransform{};
  const bool need_quantile = mode == CanonicalMode::kIsotropic && quantile > 0;
  block = std::max<int64_t>(1, block);
  const int64_t nblocks = (n + block - 1) / block;
  // Pass 1: count, min/max, and an evenly strided sample of single points (~64K) that
  // brackets the quantile ranks for pass 2. Single points, not whole blocks: neighbouring
  // points of a real point map are correlated, and a block sample misses the brackets.
  const int64_t kSampleTarget = 1 << 16;
  const int64_t stride = std::max<int64_t>(1, n / kSampleTarget);
  const int threads = cpu_threads();
  std::vector<Stats> stats(threads);
  std::vector<std::vector<float>> sample(threads * 3);
  parallel_for(nblocks, threads, [&](int c, int64_t b0, int64_t b1) {
    RowBuffer buf(block);
    Stats& s = stats[c];
    for (int64_t b = b0; b < b1; ++b) {
      int64_t begin = b * block, cnt = std::min(block, n - begin);
      source(begin, cnt, buf.x, buf.y, buf.z);
      s.count += block_count_valid(buf.x, cnt);
      const float* axes[3] = {buf.x, buf.y, buf.z};
      for (int a = 0; a < 3; ++a) block_stats(axes[a], cnt, &s.mn[a], &s.mx[a]);
      if (need_quantile)
        for (int64_t i = (stride - begin % stride) % stride; i < cnt; i += stride)
          if (axes[0][i] == axes[0][i])  // invalid points are NaN on all three axes
            for (int a = 0; a < 3; ++a) sample[c * 3 + a].push_back(axes[a][i]);
    }
  });
  Stats total;
  for (const Stats& s : stats) {
    total.count += s.count;
    for (int a = 0; a < 3; ++a) {
      total.mn[a] = std::min(total.mn[a], s.mn[a]);
      total.mx[a] = std::max(total.mx[a], s.mx[a]);
    }
  }
  const int64_t nv = total.count;
  double lo[3], hi[3];
  for (int a = 0; a < 3; ++a) { lo[a] = total.mn[a]; hi[a] = total.mx[a]; }
  if (!need_quantile || nv == 0) return transform_from_box(mode, lo, hi, nv);

  std::vector<float> samp[3];
  for (int a = 0; a < 3; ++a)
    for (int c = 0; c < threads; ++c)
      samp[a].insert(samp[a].end(), sample[c * 3 + a].begin(), sample[c * 3 + a].end());
  const int64_t sv = static_cast<int64_t>(samp[0].size());

  std::vector<Target> targets;
  for (int a = 0; a < 3; ++a)
    for (double q : {quantile, 1.0 - quantile}) {
      Target t;
      t.axis = a;
      t.pos = quantile_pos(q, nv);
      targets.push_back(std::move(t));
    }
  if (sv == nv) {  // the sample is every valid point: select directly
    for (Target& t : targets) {
      float x, y;
      select2(samp[t.axis], t.pos.k, t.pos.k2, &x, &y);
      t.value = lerp_quantile(x, y, t.pos.frac);
      t.done = true;
    }
  } else {
    // Bracket each rank by the sample's order statistics +-5 sigma (binomial) + slack.
    for (Target& t : targets) {
      double p = static_cast<double>(t.pos.k) / static_cast<double>(nv);
      double j = p * static_cast<double>(sv);
      double d = 5.0 * std::sqrt(static_cast<double>(sv) * p * (1 - p)) + 16;
      int64_t jl = static_cast<int64_t>(std::floor(j - d)), jh = static_cast<int64_t>(std::ceil(j + d)) + 1;
      std::vector<float>& s = samp[t.axis];
      if (jl >= 0) { std::nth_element(s.begin(), s.begin() + jl, s.end()); t.lo = s[jl]; }
      if (jh < sv) { std::nth_element(s.begin(), s.begin() + jh, s.end()); t.hi = s[jh]; }
    }
  }
  // Pass 2 (repeated with widened brackets in the rare case a rank fell outside):
  // count below each bracket and gather the candidates inside it.
  for (int round = 0; round < 3; ++round) {
    std::vector<int> open;
    for (size_t i = 0; i < targets.size(); ++i)
      if (!targets[i].done) open.push_back(static_cast<int>(i));
    if (open.empty()) break;
    std::vector<std::vector<int64_t>> below(threads, std::vector<int64_t>(open.size(), 0));
    std::vector<std::vector<std::vector<float>>> cand(threads,
                                                      std::vector<std::vector<float>>(open.size()));
    parallel_for(nblocks, threads, [&](int c, int64_t b0, int64_t b1) {
      RowBuffer buf(block);
      std::vector<uint8_t> in(block + 8);
      for (int64_t b = b0; b < b1; ++b) {
        int64_t begin = b * block, cnt = std::min(block, n - begin);
        source(begin, cnt, buf.x, buf.y, buf.z);
        const float* axes[3] = {buf.x, buf.y, buf.z};
        for (size_t o = 0; o < open.size(); ++o) {
          const Target& t = targets[open[o]];
          below[c][o] += block_bracket(axes[t.axis], cnt, t.lo, t.hi, in.data());
          gather_marked(axes[t.axis], in.data(), cnt, cand[c][o]);
        }
      }
    });
    for (size_t o = 0; o < open.size(); ++o) {
      Target& t = targets[open[o]];
      t.below = 0;
      t.cand.clear();
      for (int c = 0; c < threads; ++c) {
        t.below += below[c][o];
        t.cand.insert(t.cand.end(), cand[c][o].begin(), cand[c][o].end());
      }
      int64_t in_count = static_cast<int64_t>(t.cand.size());
      if (t.below <= t.pos.k && t.pos.k2 < t.below + in_count) {
        float x, y;
        select2(t.cand, t.pos.k - t.below, t.pos.k2 - t.below, &x, &y);
        t.value = lerp_quantile(x, y, t.pos.frac);
        t.done = true;
      } else {  // widen the failing side to the whole range; the next round must succeed
        if (t.below > t.pos.k) t.lo = -kInf;
        if (t.pos.k2 >= t.below + in_count) t.hi = kInf;
      }
      std::vector<float>().swap(t.cand);
    }
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
  switch (impl) {
    case Impl::kReference: return cpu::canonicalize_reference(a);
    case Impl::kFast: return cpu::canonicalize_fast(a);
    case Impl::kCuda:
#ifdef SR3D_WITH_CUDA
      return cuda::canonicalize_host(a);
#else
      break;
#endif
  }
  throw_cpu_only_build();
}

}  // namespace sr3d
