// Rotary position embedding (Qwen2, HF "rotate_half" layout): host pointers, one Impl switch.
#pragma once
#include <cstdint>

#include "common.h"

namespace sr3d {

// x: (n_tok, n_heads, head_dim) f32, in place, head_dim even; positions: (n_tok) int32 >= 0.
// Pairs (i, i + head_dim/2) rotate by angle = pos * inv_freq[i], inv_freq[i] =
// theta^(-2i/head_dim).
void rope(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          double theta, Impl impl);

// RoPE inverse frequencies as used by both CPU paths and uploaded by the CUDA engine:
// inv_freq[i] = float(1 / theta^(float(2i) / float(head_dim))), the exponent in float32 like
// HF's torch.arange(0, dim, 2).float() / dim, the power and reciprocal in double then rounded.
// Angles are float(pos) * inv_freq[i] in float32 (HF's float32 matmul of one term).
void rope_inv_freq(int64_t head_dim, double theta, float* inv_freq);

namespace cpu {
void rope_reference(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                    const int32_t* positions, double theta);
void rope_fast(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
               const int32_t* positions, double theta);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void rope_host(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
               const int32_t* positions, double theta);
}  // namespace cuda
#endif

}  // namespace sr3d
