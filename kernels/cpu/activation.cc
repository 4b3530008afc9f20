// CPU activations (GELU tanh / erf, SiLU) and SwiGLU's silu_mul: see activation.h.
#include "../activation.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "simd.h"

namespace sr3d {

namespace {

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

SR3D_TARGET_CLONES
void silu_mul_span(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace

namespace cpu {

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

}  // namespace cpu

void activation(float* x, int64_t n, Act act, Impl impl) {
  need_positive(n, "n (values)");
  need_ptr(x, "x");
  if (act != Act::kGeluTanh && act != Act::kGeluErf && act != Act::kSilu)
    throw_invalid_argument("an activation (gelu_tanh, gelu_erf or silu)", "act",
                           "code " + num(static_cast<int>(act)));
  run_impl(impl,
           [&] { cpu::activation_reference(x, n, act); },
           [&] { cpu::activation_fast(x, n, act); },
           SR3D_CUDA_PATH(cuda::activation_host(x, n, act)));
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, Impl impl) {
  need_positive(n, "n (values)");
  need_ptr(gate, "gate");
  need_ptr(up, "up");
  need_ptr(out, "out");
  run_impl(impl,
           [&] { cpu::silu_mul_reference(gate, up, n, out); },
           [&] { cpu::silu_mul_fast(gate, up, n, out); },
           SR3D_CUDA_PATH(cuda::silu_mul_host(gate, up, n, out)));
}

}  // namespace sr3d
