// Linear (GEMV for one input row, GEMM otherwise) of the native engine: host pointers in and
// out, one Impl switch. The engines call the same math on resident buffers (the CUDA one
// through kernels/cuda/nn.cuh's linear_dev).
//
// Fast-path numerics (shared by attention's scores and the norms through cpu/vec8.h): every
// output element is computed by the same sequence of float operations whatever n, the tiling
// or the thread count is (8 lane partial sums over the reduction dim in order, reduced in a
// fixed tree, then the tail, then the bias), so a row's result does not depend on which other
// rows are in the batch. That is what makes an engine prefill of n tokens bit-identical to n
// single-token steps.
#pragma once
#include <cstdint>

#include "common.h"
#include "weights.h"

namespace sr3d {

// x: (n, w.cols) f32; w: (w.rows, w.cols) f32/f16/bf16 or int4/int8 (weights.h) [out][in];
// bias: (w.rows) f32 or null -> y: (n, w.rows) f32, y = x . W^T + bias.
// Quantized weights: the reference dequantizes each row to float32 and runs the float32
// reference; the fast path dequantizes 16 rows at a time into per-thread float32 scratch and
// runs the float32 fast kernels, so its outputs are bit-identical to the float32 fast path
// over the dequantized weight (any n, any thread count). Impl::kCuda: kernels/cuda/linear_q.cu.
void linear(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y, Impl impl);

namespace cpu {
// Quantized w only: rows [r0, r0 + count) dequantized to float32 (count x w.cols) at out.
void dequantize_rows(const WeightRef& w, int64_t r0, int64_t count, float* out);
void linear_reference(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
void linear_fast(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
// `count` linears that share the input x (same cols; e.g. q/k/v or gate/up) in one parallel
// region: ys[i] = x . ws[i]^T + biases[i] (biases[i] may be null). Same per-element
// arithmetic as linear_fast.
void linear_multi_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                       float* const* ys, int count);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Host pointers in and out (upload, run, download); linear_dev in kernels/cuda/nn.cuh is the
// device-resident version the CUDA engine uses.
void linear_host(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
}  // namespace cuda
#endif

}  // namespace sr3d
