// Elementwise activations of the nn path: GELU tanh approximation (SigLIP), GELU erf (the
// projector, the MLPs), SiLU, and SwiGLU's silu(gate) * up. Host pointers, one Impl switch.
#pragma once
#include <cstdint>

#include "common.h"

namespace sr3d {

enum class Act : int32_t { kGeluTanh = 0, kGeluErf = 1, kSilu = 2 };

// x: (n) f32, in place -> act(x).
void activation(float* x, int64_t n, Act act, Impl impl);
// gate, up: (n) f32 -> out: (n) f32, out[i] = silu(gate[i]) * up[i].
void silu_mul(const float* gate, const float* up, int64_t n, float* out, Impl impl);

namespace cpu {
void activation_reference(float* x, int64_t n, Act act);
void activation_fast(float* x, int64_t n, Act act);
void silu_mul_reference(const float* gate, const float* up, int64_t n, float* out);
void silu_mul_fast(const float* gate, const float* up, int64_t n, float* out);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void activation_host(float* x, int64_t n, Act act);
void silu_mul_host(const float* gate, const float* up, int64_t n, float* out);
}  // namespace cuda
#endif

}  // namespace sr3d
