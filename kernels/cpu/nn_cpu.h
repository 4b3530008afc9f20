// CPU halves of the nn.h ops: a plain reference loop (the thing every other path is
// tested against) and a fast path (thread pool + vectorizable inner loops) per op.
// The public dispatchers in nn.h validate arguments first; these assume valid input.
//
// Fast-path numerics: every output element is computed by the same sequence of float
// operations whatever n, the tiling or the thread count is (8 lane partial sums over the
// reduction dim in order, reduced in a fixed tree, then the tail, then the bias), so a
// row's result does not depend on which other rows are in the batch. That is what makes
// an engine prefill of n tokens bit-identical to n single-token steps.
#pragma once
#include <cstdint>

#include "../nn.h"

namespace sr3d {

// Argument checks shared by the CPU dispatchers and the CUDA host entry points; each
// throws kInvalidArgument naming the argument.
void nn_check_linear(const float* x, int64_t n, const WeightRef& w, const float* bias,
                     const float* y);
void nn_check_attention(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                        int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                        int64_t q_offset, const float* out);

// RoPE inverse frequencies as used by both CPU paths: inv_freq[i] =
// float(1 / theta^(float(2i) / float(head_dim))), the exponent in float32 like HF's
// torch.arange(0, dim, 2).float() / dim, the power and reciprocal in double then rounded.
// Angles are float(pos) * inv_freq[i] in float32 (HF's float32 matmul of one term).
void rope_inv_freq(int64_t head_dim, double theta, float* inv_freq);

namespace cpu {

// linear_reference / linear_fast are declared in nn.h. linear_multi_fast runs `count`
// linears that share the input x (same cols; e.g. q/k/v or gate/up) in one parallel region:
// ys[i] = x . ws[i]^T + biases[i] (biases[i] may be null). Same per-element arithmetic as
// linear_fast.
void linear_multi_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                       float* const* ys, int count);
void layer_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma,
                          const float* beta, float eps, float* y);
void layer_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma,
                     const float* beta, float eps, float* y);
void rms_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                        float* y);
void rms_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                   float* y);
void activation_reference(float* x, int64_t n, Act act);
void activation_fast(float* x, int64_t n, Act act);
void silu_mul_reference(const float* gate, const float* up, int64_t n, float* out);
void silu_mul_fast(const float* gate, const float* up, int64_t n, float* out);
void rope_reference(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                    const int32_t* positions, double theta);
void rope_fast(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
               const int32_t* positions, double theta);
void attention_reference(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                         int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                         int64_t q_offset, float* out);
void attention_fast(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                    int64_t q_offset, float* out);
void space_to_channel3_reference(const float* x, int64_t n, int64_t g, int64_t c, float* y);
void space_to_channel3_fast(const float* x, int64_t n, int64_t g, int64_t c, float* y);
void patch_embed_reference(const float* img, int64_t n, int64_t size, int64_t patch,
                           const WeightRef& w, const float* bias, float* out);
void patch_embed_fast(const float* img, int64_t n, int64_t size, int64_t patch,
                      const WeightRef& w, const float* bias, float* out);

}  // namespace cpu
}  // namespace sr3d
