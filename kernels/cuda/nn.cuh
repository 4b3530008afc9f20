// Device-resident neural-network ops (the math of kernels/linear.h, attention.h, norms.h,
// activation.h, rope.h and projector.h on device pointers, one explicit stream each), each
// defined in the op's own file: kernels/cuda/linear.cu (linear_dev, embed_rows_dev),
// norms.cu, activation.cu (activation_dev, silu_mul_dev), rope.cu, attention.cu (with
// sm_count) and projector.cu (space_to_channel3, im2col_patches, add_rows). The CUDA engine
// (engine_cuda.cu) chains these on resident buffers; the cuda::*_host entry points of those
// headers (in the same files) wrap them in a RoundTrip (upload / run / download) for the tests.
//
// Every pointer below is a device pointer; activations are float32 row-major, weights
// keep their dtype (WeightRef.data on the device), accumulation is float32.
#pragma once
#ifdef SR3D_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

#include "../activation.h"
#include "../weights.h"

namespace sr3d {
namespace cuda {

// Epilogue activation of linear_dev: kNoAct, or an Act value.
constexpr int kNoAct = -1;

// y[n][w.rows] = act(x[n][w.cols] . W^T + bias) + residual. bias and residual may be null;
// residual may alias y (each element is read before it is written, by the same thread);
// x must not alias y. n <= 4 runs the bandwidth-bound GEMV (one warp per output row,
// 16-byte weight loads), larger n the tiled shared-memory GEMM (128x128 tiles, fp32 FMA), or,
// when switched on (SR3D_CUDA_TC=1 / set_tc_gemm below), the bf16 tensor-core GEMM.
// int4 / int8 weights (w.scales / zeros / perm on the device too): n <= 8 runs linear_q.cu's
// GEMV (dequantized in registers), larger n the same GEMM with each tile dequantized.
void linear_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                cudaStream_t s, int act = kNoAct, const float* residual = nullptr);
// Threads per block of the int4 / int8 vector GEMV: 0 = linear_q.cu's heuristic, else 32, 64,
// 96 or 128 (a benchmark knob: process-wide, not thread-safe; the GPU bench times both shapes).
void set_quant_gemv_threads(int threads);
// The bf16 tensor-core GEMM (gemm_tc.cu) for n > 4 with float32 / float16 / bfloat16 weights
// (and n > 8 with int4 / int8 ones without act-order, group % 8 == 0),
// and the tensor-core attention (attention_tc.cu) for prefill / vision: SR3D_CUDA_TC=1 turns
// both on (unset or 0: the float32 kernels; another value is an invalid-argument error at the
// first GEMM or attention); the GEMM runs on sm_80+ GPUs when K % 8 == 0 and x and W are
// 16-byte aligned, else the SIMT GEMM does. set_tc_gemm (tests, benchmarks; process-wide,
// not thread-safe with running GEMMs): 1 = on, 0 = off, -1 = SR3D_CUDA_TC decides again;
// returns the previous setting. tc_gemm_enabled: the switch (throws for an invalid
// SR3D_CUDA_TC); tc_gemm_supported: whether the current device runs the kernel.
int set_tc_gemm(int mode);
// Launches the tensor-core GEMM and returns true when it applies (switch on, sm_80+ device,
// float32 / float16 / bfloat16 W or int4 / int8 without perm and with group % 8 == 0,
// K % 8 == 0, 16-byte aligned x and W); false leaves the
// call to linear_dev's SIMT GEMM. Same arguments as linear_dev, n >= 1.
bool linear_tc_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                   cudaStream_t s, int act = kNoAct, const float* residual = nullptr);
bool tc_gemm_enabled();
bool tc_gemm_supported();
// LayerNorm (beta may be null = 0) / RMSNorm over rows of d; y may alias x.
void layer_norm_dev(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                    float eps, float* y, cudaStream_t s);
void rms_norm_dev(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y,
                  cudaStream_t s);
void activation_dev(float* x, int64_t n, Act act, cudaStream_t s);
// out[r][i] = silu(gate[r * stride + i]) * up[r * stride + i] for r < rows, i < cols
// (out is contiguous rows x cols). The engine's fused gate|up projection has
// up = gate + cols, stride = 2 cols.
void silu_mul_dev(const float* gate, const float* up, int64_t rows, int64_t cols,
                  int64_t stride, float* out, cudaStream_t s);
// RoPE in place on x[t * row_stride + h * head_dim + ...] at positions[t] (device int32);
// inv_freq: the device copy of rope_inv_freq(head_dim, theta) (kernels/rope.h), so
// angles round exactly as on the CPU.
void rope_dev(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t row_stride,
              const int32_t* positions, const float* inv_freq, cudaStream_t s);
// Qwen2 step after the fused q|k|v projection qkv[n][(hq + 2 hkv) d]: RoPE on the q heads in
// place at positions pos0 + t, RoPE'd k and the v heads written to the caches
// (k_cache/v_cache [max_context][hkv][d], rows pos0..pos0+n-1). pos0_dev (device int32, may
// be null): pos0 is read from there when the kernel runs instead (a decode step replayed from a
// CUDA graph, whose kernel arguments are frozen at capture); the same math as the argument.
void rope_qkv_to_cache_dev(float* qkv, int64_t n, int64_t hq, int64_t hkv, int64_t d,
                           int64_t pos0, const float* inv_freq, float* k_cache,
                           float* v_cache, cudaStream_t s, const int32_t* pos0_dev = nullptr);

// Attention over `batch` independent sequences. Token t of sequence b: q at
// q + b * q_bstride + t * q_stride + h * d (likewise k / v with kv_*, out with out_*).
struct AttentionArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  int64_t q_stride = 0, kv_stride = 0, out_stride = 0;
  int64_t q_bstride = 0, kv_bstride = 0, out_bstride = 0;
  int64_t batch = 1, nq = 0, nk = 0, hq = 0, hkv = 0, d = 0;
  float scale = 1.f;
  bool causal = false;
  int64_t q_offset = 0;
  // Device int32 (may be null): the real q_offset, read when the kernels run, with nk =
  // q_offset + nq (a decoder over its KV cache; a decode step replayed from a CUDA graph, whose
  // kernel arguments are frozen at capture). q_offset / nk above are then the largest the launch
  // covers (nk = q_offset + nq): the grid and the split workspace are sized for them, and blocks
  // past the real keys return at once. Results are bitwise those of a launch with the real values.
  const int32_t* q_offset_dev = nullptr;
  // Optional scratch for the split partials (attention_workspace_floats floats); when
  // null or short, attention_dev allocates its own from the stream-ordered pool.
  float* workspace = nullptr;
  size_t workspace_floats = 0;
};
// The tensor-core attention (attention_tc.cu): launches it and returns true when it applies
// (the tensor-core switch on, see set_tc_gemm; sm_80+ device; nq >= 16; an even head dim that
// pads to 64, 80 or 128); false leaves the call to attention_dev's float32 kernel, which calls
// this first. Arguments checked by attention_dev.
bool attention_tc_dev(const AttentionArgs& a, cudaStream_t s);
// Workspace that covers any split attention_dev picks for up to nq queries x hq heads
// (batch 1) of head dim d: at most 8 x SMs / hq splits (>= 1).
size_t attention_workspace_floats(int64_t nq, int64_t hq, int64_t d);
// Flash-style online softmax (tiles of 16 queries x 32 keys in shared memory); splits the
// keys over several blocks (and combines them) when there are too few query tiles to fill
// the GPU, as in a decode step. d <= 256.
void attention_dev(const AttentionArgs& a, cudaStream_t s);

void space_to_channel3_dev(const float* x, int64_t n, int64_t g, int64_t c, float* y,
                           cudaStream_t s);
// Patch rows: col[(i * P + p)][ch * patch^2 + ky * patch + kx] (P = (size/patch)^2), the
// conv as a GEMM against the [hidden][3 * patch^2] weight.
void im2col_patches_dev(const float* img, int64_t n, int64_t size, int64_t patch, float* col,
                        cudaStream_t s);
// x[i][t][c] += pos[t][c] for i < n, t < tokens, c < channels.
void add_rows_dev(float* x, int64_t n, int64_t tokens, int64_t channels, const float* pos,
                  cudaStream_t s);
// out[t][c] = float(table[ids[t]][c]) (ids on the device, already validated); an int4 / int8
// table's rows dequantized as cpu::dequantize_rows does (bit-identical).
void embed_rows_dev(const WeightRef& table, const int32_t* ids, int64_t n, float* out,
                    cudaStream_t s);

// Streaming multiprocessors of the current device (cached per device).
int sm_count();

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
