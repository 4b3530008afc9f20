// CPU scaled dot-product attention: see attention.h for the contract.
#include "../attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "simd.h"
#include "vec8.h"

namespace sr3d {

namespace {

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

void attention_check(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
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

}  // namespace

namespace cpu {

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

}  // namespace cpu

void attention(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
               int64_t hq, int64_t hkv, int64_t d, float scale, bool causal, int64_t q_offset,
               float* out, Impl impl) {
  attention_check(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out);
  run_impl(
      impl,
      [&] { cpu::attention_reference(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out); },
      [&] { cpu::attention_fast(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out); },
      SR3D_CUDA_PATH(
          cuda::attention_host(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out)));
}

}  // namespace sr3d
