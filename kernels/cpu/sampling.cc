// Token choice from logits (sampling.h): greedy, or HF's warper order temperature -> top-k ->
// top-p, then a draw from the renormalized distribution with xoshiro256**.
#include "../sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "../common.h"

namespace sr3d {

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t xoshiro_next(uint64_t s[4]) {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

// Uniform in [0, 1) from the top 53 bits.
double uniform01(uint64_t s[4]) { return static_cast<double>(xoshiro_next(s) >> 11) * 0x1.0p-53; }

}  // namespace

void seed_rng(uint64_t seed, uint64_t rng[4]) {
  if (!rng) throw_invalid_argument("a non-null rng state", "rng", "nullptr");
  uint64_t s = seed;
  for (int i = 0; i < 4; ++i) rng[i] = splitmix64(s);
}

int32_t sample_token(const float* logits, int64_t vocab, const Sampling& sp, uint64_t rng[4]) {
  if (vocab < 1 || vocab > INT32_MAX)
    throw_invalid_argument("a vocabulary size in [1, 2^31)", "vocab", std::to_string(vocab));
  if (!logits) throw_invalid_argument("a non-null logits buffer", "logits", "nullptr");
  if (std::isnan(sp.temperature))
    throw_invalid_argument("a temperature >= 0 (0 = greedy)", "temperature", "NaN");
  if (sp.top_k < 0)
    throw_invalid_argument("top_k >= 0 (0 = off)", "top_k", std::to_string(sp.top_k));
  if (!(sp.top_p > 0.f && sp.top_p <= 1.f))
    throw_invalid_argument("top_p in (0, 1]", "top_p", format_number(sp.top_p));
  for (int64_t i = 0; i < vocab; ++i)
    if (std::isnan(logits[i]))
      throw_invalid_argument("logits without NaN", "logits[" + std::to_string(i) + "]", "NaN");

  if (sp.temperature <= 0.f) {  // greedy: strict > keeps the lowest index on ties
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
  }
  if (!rng) throw_invalid_argument("a seeded rng state (seed_rng)", "rng", "nullptr");
  if (!std::isfinite(sp.temperature))
    throw_invalid_argument("a finite temperature", "temperature", format_number(sp.temperature));

  // Temperature (HF divides the float32 logits).
  std::vector<float> z(logits, logits + vocab);
  for (float& v : z) v /= sp.temperature;
  // Order by descending logit, ties by lower index, so everything below is deterministic.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
  int64_t keep = vocab;
  // top-k (HF TopKLogitsWarper): drop every logit < the k-th largest (ties with it stay).
  if (sp.top_k > 0 && sp.top_k < vocab) {
    const float kth = z[order[sp.top_k - 1]];
    keep = sp.top_k;
    while (keep < vocab && z[order[keep]] >= kth) ++keep;
  }
  if (z[order[0]] == -INFINITY)
    throw_invalid_argument("at least one finite logit", "logits", "all -Infinity");
  // Softmax over the kept tokens (float32 like torch, max-subtracted).
  const float m = z[order[0]];
  std::vector<float> p(static_cast<size_t>(keep));
  float total = 0.f;
  for (int64_t i = 0; i < keep; ++i) {
    p[i] = std::exp(z[order[i]] - m);
    total += p[i];
  }
  for (float& v : p) v /= total;
  // top-p (HF TopPLogitsWarper): in ascending order, remove the tokens whose cumulative
  // probability is <= 1 - top_p; the most likely token always stays.
  if (sp.top_p < 1.f) {
    float cum = 0.f;
    int64_t removed = 0;
    for (int64_t i = keep - 1; i >= 1; --i) {
      cum += p[i];
      if (cum <= 1.f - sp.top_p) ++removed;
      else break;
    }
    keep -= removed;
  }
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += p[i];
  const double u = uniform01(rng) * mass;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

}  // namespace sr3d
