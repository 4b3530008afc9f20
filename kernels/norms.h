// LayerNorm (SigLIP, the projector) and Qwen2's RMSNorm over the last dim: host pointers in
// and out, one Impl switch. The references sum in double (the accurate side of every check);
// the fast paths sum in float32 8-lane partials (cpu/vec8.h).
#pragma once
#include <cstdint>

#include "common.h"

namespace sr3d {

// x: (n, d) f32; gamma, beta: (d) f32; eps >= 0 -> y: (n, d) f32,
// (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
void layer_norm(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                float eps, float* y, Impl impl);
// x: (n, d) f32; gamma: (d) f32; eps >= 0 -> y: (n, d) f32, x * rsqrt(mean(x^2) + eps) * gamma.
void rms_norm(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y,
              Impl impl);

namespace cpu {
void layer_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma,
                          const float* beta, float eps, float* y);
void layer_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma,
                     const float* beta, float eps, float* y);
void rms_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                        float* y);
void rms_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                   float* y);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void layer_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                     float eps, float* y);
void rms_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y);
}  // namespace cuda
#endif

}  // namespace sr3d
