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
// Quantized weights (int4 / int8, weights.h): the reference dequantizes each row to float32
// and runs the float32 reference. The fast path has its own arithmetic, the same in every
// kernel (AVX-512, AVX2, portable; decode GEMV and prefill GEMM; any n, any thread count):
//   - the stream of a row: its stored columns in order, except that in each whole int4 block
//     of 128 (c..c+127) stream position c + 16t + l is stored column c + 8l + t (t < 8,
//     l < 16: nibble t of the block's dword l, so one shift unpacks 16 weights); `main` = the
//     whole blocks (int4: 128 inputs, int8: 16), the tail = the rest in stored order. Stored
//     column j has input x[perm[j]] (perm null: x[j]) and weight w_j = s_g * float(q_j - z_g)
//     rounded once (the reference's exactly dequantized value).
//   - 16 lane sums a[l] = 0; for p = 0, 16, .. < main: a[l] = fma(x_(p+l), w_(p+l), a[l]);
//     then t = ((b0+b4)+(b2+b6)) + ((b1+b5)+(b3+b7)) with b[l] = a[l] + a[l+8]; then for each
//     tail input t = fma(x_j, w_j, t); then y = t + bias.
// So a row's result does not depend on the batch, and it stays within 1e-5 of sum |x w| of the
// reference (the same products, fused, summed in another order; the tests check that bound).
// Impl::kCuda: kernels/cuda/linear_q.cu (its own summation order; equal within float32 rounding).
void linear(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y, Impl impl);
// linear()'s argument checks (sizes, null buffers, weight layout), typed errors naming the
// argument; the other entry points (linear_a8_fast ...) run them too.
void linear_check(const float* x, int64_t n, const WeightRef& w, const float* bias, const float* y);

// int8 activations (opt-in: the engine's `activations: 'int8'`; llama.cpp's Q8_0 precision) for
// int4 / int8 weights whose group is a multiple of 32 (other groups and non-quantized weights:
// the exact path above, unchanged). Arithmetic, the same in every path:
//   - each input row, taken through the act-order perm (stored column j has input x[perm[j]]),
//     is cut into blocks of B = 32 consecutive stored columns; per block d = amax / 127.f
//     (amax = max |x_j|, a float division), xq_j = round-half-away(x_j / d) clamped to
//     [-127, 127] (d == 0: every xq_j = 0);
//   - per block b of row r, in group g: D_b = sum_j q_j * xq_j - z_g * sum_j xq_j (an exact int32);
//   - t = 0; for b = 0, 1, ..: t = fma(float(D_b), s_g * d_b, t) (s_g * d_b one float multiply);
//     y = t + bias.
// Integer sums are exact in any order and the float steps are one fixed sequence per output, so
// AVX-512 VNNI, AVX2 and the portable kernels, the decode GEMV and the prefill GEMM, any n and
// any thread count give linear_a8_reference's bits, and an engine prefill of n tokens equals n
// decode steps. The error against the exact path is the activation rounding: per block at most
// d / 2 per input (x finite). Impl::kReference / kFast only (CPU).
void linear_a8(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y, Impl impl);

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
// linear_multi_fast for int4 / int8 weights only (kernels/cpu/linear_q.cc).
void linear_q_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                   float* const* ys, int count);
// Tests: caps the ISA of the int4 / int8 kernels (2 AVX-512, 1 AVX2, 0 portable; -1 the
// default, SR3D_CPU_ISA's cap) and returns the one now used. Not thread-safe.
int set_quant_isa(int isa);
// Tests: the x86 kernel of the float32 / bf16 decode GEMV (n = 1): 1 AVX2, 0 the generic code
// (SR3D_CPU_ISA=portable, a CPU without AVX2 + FMA, or a build without the x86 kernels).
int linear_gemv_isa();

// ---- bf16-activation mode ("ab16", opt-in; kernels/cpu/linear_ab16.cc) ----------------------
// llama.cpp's precision for bf16 weights: the activations rounded to bf16, bf16 x bf16 products,
// float32 sums, so the AVX-512 BF16 instruction vdpbf16ps (32 MACs per instruction) can run it.
// ws: `count` bfloat16 weights (w.rows x w.cols, the same cols) sharing x: (n, cols) f32;
// biases[i]: (ws[i].rows) f32 or null -> ys[i]: (n, ws[i].rows) f32. Other dtypes, sizes < 1,
// unequal cols or null buffers throw kInvalidArgument naming the argument.
// Every output y[i][r] is this sequence, the same on every path (AVX-512 BF16, AVX-512F and
// AVX2 emulations, portable; decode GEMV and prefill GEMM; any n, any thread count), so a row's
// result does not depend on the batch (a prefill of n tokens == n decode steps, bit for bit):
//   - x_j = bf16(x[i][j]) as vcvtne2ps2bf16: round to nearest even; a NaN stays NaN (quieted:
//     the top 16 bits | 0x40); a float32 subnormal becomes a zero of its sign. w_j = the stored
//     bf16. Both are zero-padded from cols to K = cols rounded up to a multiple of 32.
//   - 16 lane sums a[l] = +0; for each block b of 32 inputs (b = 0, 32, .. < K) and lane l:
//       a[l] = step(a[l], x_(b+2l+1), w_(b+2l+1)); a[l] = step(a[l], x_(b+2l), w_(b+2l))
//     step(a, x, w) = a + x * w with the product exact and one rounding to nearest even, where a
//     subnormal x, w or a counts as a zero of its sign and a result that is tiny after rounding
//     (|r| < 2^-126 with an unbounded exponent) becomes a zero of its sign (DAZ / FTZ). That is
//     vdpbf16ps as Intel's SDM specifies it (MXCSR ignored), and what an AMD Zen 5 (family 1Ah)
//     was measured to do bit for bit, including the rounding window just below 2^-126 (there
//     x86's FTZ, tiny after rounding, differs from a flush of the subnormal result).
//   - t = ((c0 + c4) + (c2 + c6)) + ((c1 + c5) + (c3 + c7)) with c[l] = a[l] + a[l + 8], then
//     y = t + bias[r]: ordinary float32 additions (no flushing).
// Accuracy (no overflow): |y - (sum_j x_j w_j + bias)| <= gamma_m (sum_j |x_j w_j| + |bias|)
// + K 2^-126, with x_j, w_j the bf16 values after the DAZ, m = K / 16 + 5 roundings on the
// longest path (K / 16 steps, 4 tree levels, the bias), gamma_m = m u / (1 - m u), u = 2^-24,
// and each step's flush at most 2^-126 off.
void linear_ab16_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                      float* const* ys, int count);
// The same arithmetic as plain scalar loops (the step in float64, exact), for the tests.
void linear_ab16_reference(const float* x, int64_t n, const WeightRef& w, const float* bias,
                           float* y);
// Tests: caps the ISA of the ab16 kernels (3 AVX-512 BF16, 2 AVX-512F, 1 AVX2, 0 portable; -1
// the default, SR3D_CPU_ISA's cap) and returns the one now used. Not thread-safe.
int set_ab16_isa(int isa);
// The one now used: "avx512bf16" (vdpbf16ps), "avx512f" / "avx2" (its emulation) or "portable"
// (buildInfo / engine info report it).
const char* ab16_isa_name();

// int8 activations (kernels/cpu/linear_a8.cc). a8_supported: int4 / int8 with group % 32 == 0.
bool a8_supported(const WeightRef& w);
void linear_a8_reference(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
// linear_multi_fast's signature; weights !a8_supported take linear_multi_fast (exact) instead.
void linear_a8_fast(const float* x, int64_t n, const WeightRef* ws, const float* const* biases,
                    float* const* ys, int count);
// Tests: caps the ISA of the int8-activation kernels (2 AVX-512 VNNI, 1 AVX2, 0 portable; -1
// the default, SR3D_CPU_ISA's cap) and returns the one now used. Not thread-safe.
int set_a8_isa(int isa);
// The one now used: "avx512vnni", "avx2", "neon-dotprod" (aarch64 SDOT) or "portable"
// (buildInfo / engine info report it).
const char* a8_isa_name();
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Host pointers in and out (upload, run, download); linear_dev in kernels/cuda/nn.cuh is the
// device-resident version the CUDA engine uses.
void linear_host(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y);
}  // namespace cuda
#endif

}  // namespace sr3d
