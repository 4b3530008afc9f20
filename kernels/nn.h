// Neural-network ops of the native engine (SigLIP, the 3x3 projector, MLPs, Qwen2), at op
// level: host pointers in and out, one Impl switch, like every other kernel. The engines
// (engine.h) call the same math on resident buffers; these entry points are what the
// tests (C++ and jest, against float64 references) and the microbenchmarks drive.
//
// Conventions: activations are float32, row-major, contiguous. Weights keep their
// checkpoint dtype (f32 / f16 / bf16) and layout and are used in place; every
// accumulation is float32. A Linear weight is torch's nn.Linear layout [out][in].
#pragma once
#include <cstdint>
#include <cstring>

#include "common.h"

namespace sr3d {

enum class WType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2 };
const char* wtype_name(WType t);
inline int64_t wtype_size(WType t) { return t == WType::kF32 ? 4 : 2; }

// bf16 / f16 bits -> float (exact), shared by CPU and CUDA code.
SR3D_HOST_DEVICE inline float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
SR3D_HOST_DEVICE inline float f16_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) { man <<= 1; --exp; }
      u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}
// float -> bf16 bits, round to nearest even (NaN stays NaN), as torch's .to(bfloat16).
SR3D_HOST_DEVICE inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
SR3D_HOST_DEVICE inline float load_weight(const void* data, WType t, int64_t i) {
  switch (t) {
    case WType::kF32: return static_cast<const float*>(data)[i];
    case WType::kF16: return f16_to_float(static_cast<const uint16_t*>(data)[i]);
    default: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
  }
}

// A borrowed 2-D weight: rows x cols, row-major (for a Linear: rows = out, cols = in).
struct WeightRef {
  const void* data = nullptr;
  WType type = WType::kF32;
  int64_t rows = 0, cols = 0;
};

enum class Act : int32_t { kGeluTanh = 0, kGeluErf = 1, kSilu = 2 };

// y[n][rows] = x[n][cols] . W^T (+ bias[rows], float32, may be null).
void linear(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y, Impl impl);
// LayerNorm over the last dim d: (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
void layer_norm(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                float eps, float* y, Impl impl);
// Qwen2 RMSNorm: x * rsqrt(mean(x^2) + eps) * gamma.
void rms_norm(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y,
              Impl impl);
// In place over n values: GELU tanh approximation (SigLIP), GELU erf (projector, MLPs), SiLU.
void activation(float* x, int64_t n, Act act, Impl impl);
// SwiGLU: out[i] = silu(gate[i]) * up[i].
void silu_mul(const float* gate, const float* up, int64_t n, float* out, Impl impl);
// Rotary embedding (HF "rotate_half" layout: pairs (i, i + d/2)) in place on
// x[n_tok][n_heads][head_dim]; inv_freq[i] = theta^(-2i/head_dim); angle = pos * inv_freq.
void rope(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          double theta, Impl impl);
// Scaled dot-product attention. q [nq][hq][d]; k, v [nk][hkv][d]; hq % hkv == 0 and query head
// h reads kv head h / (hq / hkv) (GQA). causal: query i sits at absolute position q_offset + i
// and sees keys j <= q_offset + i (keys are positions 0..nk-1). out [nq][hq][d].
void attention(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
               int64_t hq, int64_t hkv, int64_t d, float scale, bool causal, int64_t q_offset,
               float* out, Impl impl);
// NVILA mlp_downsample_3x3_fix step 1-2: x [n][g*g][c] (row-major g x g grid), zero-pad to a
// multiple of 3 (bottom rows / right columns), y [n][G*G][9c] with G = ceil(g/3) and
// y[R*G+C][(m*3+k)*c + ch] = xpad[3R+m][3C+k][ch].
void space_to_channel3(const float* x, int64_t n, int64_t g, int64_t c, float* y, Impl impl);
// SigLIP patch embedding: img [n][3][size][size] -> out [n][(size/patch)^2][w.rows],
// a stride-patch convolution with weight [hidden][3][patch][patch] (w.cols = 3*patch*patch)
// plus bias; patches in row-major order.
void patch_embed(const float* img, int64_t n, int64_t size, int64_t patch, const WeightRef& w,
                 const float* bias, float* out, Impl impl);

namespace cpu {
void linear_reference(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
void linear_fast(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
// ... the other ops' reference / fast pairs are declared in kernels/cpu/nn_cpu.h.
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Host pointers in and out (upload, run, download); the device-resident versions the CUDA
// engine uses live in kernels/cuda/nn.cuh.
void linear_host(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
void layer_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                     float eps, float* y);
void rms_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y);
void activation_host(float* x, int64_t n, Act act);
void silu_mul_host(const float* gate, const float* up, int64_t n, float* out);
void rope_host(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
               const int32_t* positions, double theta);
void attention_host(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal,
                    int64_t q_offset, float* out);
void space_to_channel3_host(const float* x, int64_t n, int64_t g, int64_t c, float* y);
void patch_embed_host(const float* img, int64_t n, int64_t size, int64_t patch,
                      const WeightRef& w, const float* bias, float* out);
}  // namespace cuda
#endif

}  // namespace sr3d
