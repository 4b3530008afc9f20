// CPU rotary position embedding: see rope.h for the contract.
#include "../rope.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arg_checks.h"

namespace sr3d {

void rope_inv_freq(int64_t head_dim, double theta, float* inv_freq) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(e)));
  }
}

namespace cpu {

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

}  // namespace cpu

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
  run_impl(impl,
           [&] { cpu::rope_reference(x, n_tok, n_heads, head_dim, positions, theta); },
           [&] { cpu::rope_fast(x, n_tok, n_heads, head_dim, positions, theta); },
           SR3D_CUDA_PATH(cuda::rope_host(x, n_tok, n_heads, head_dim, positions, theta)));
}

}  // namespace sr3d
