// Scaled dot-product attention (SigLIP's bidirectional, Qwen2's causal GQA): host pointers in
// and out, one Impl switch. The CUDA engine runs attention_dev (kernels/cuda/nn.cuh).
#pragma once
#include <cstdint>

#include "common.h"

namespace sr3d {

// q: (nq, hq, d) f32; k, v: (nk, hkv, d) f32; hq % hkv == 0 and query head h reads kv head
// h / (hq / hkv) (GQA). causal: query i sits at absolute position q_offset + i and sees keys
// j <= q_offset + i (keys are positions 0..nk-1). -> out: (nq, hq, d) f32,
// softmax(scale * q . k^T) . v, the softmax in float32 with max subtraction.
void attention(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
               int64_t hq, int64_t hkv, int64_t d, float scale, bool causal, int64_t q_offset,
               float* out, Impl impl);

namespace cpu {
void attention_reference(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                         int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                         int64_t q_offset, float* out);
void attention_fast(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                    int64_t q_offset, float* out);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void attention_host(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                    int64_t q_offset, float* out);
}  // namespace cuda
#endif

}  // namespace sr3d
