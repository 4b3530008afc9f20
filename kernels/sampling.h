// Token choice from the engine's logits (host only: one row of vocab floats per step, so
// there is no fast or CUDA variant). Implemented in kernels/cpu/sampling.cc.
#pragma once
#include <cstdint>

namespace sr3d {

struct Sampling {
  float temperature = 0.f;  // <= 0: greedy (argmax, lowest index wins ties)
  float top_p = 1.f;        // nucleus mass, (0, 1]
  int32_t top_k = 0;        // 0 = off
};

// Token choice from logits (host): greedy, or temperature -> top-k -> top-p (HF order) with
// a splitmix64/xoshiro state the caller seeds; deterministic for a seed.
int32_t sample_token(const float* logits, int64_t vocab, const Sampling& s, uint64_t rng[4]);
void seed_rng(uint64_t seed, uint64_t rng[4]);

}  // namespace sr3d
