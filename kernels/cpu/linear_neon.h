// Hand-written NEON (AArch64 Advanced SIMD) kernels of the CPU Linear fast path. Defined only on
// aarch64; linear.cc calls them when cpu_neon() (kernels/common.h) holds. Per output they do
// exactly the arithmetic of linear.cc's portable path and of the x86 kernels (8-lane
// mul-then-add over k in order, the hsum8 tree, the scalar tail, the bias last; no FMA), so
// every result is bit-identical to x86-64 and to the portable fallback.
#pragma once
#include <cstdint>

#include "../weights.h"

namespace sr3d {
namespace cpu {

// Decode GEMV: y[r] = x . w[r] (+ bias[r]) for r < rows. x: (k) f32; w: (rows, k) row-major,
// f32, bf16 or f16 bits (t); bias: (rows) or null; y: (rows).
void gemv_neon(const float* x, int64_t k, const void* w, WType t, int64_t rows, const float* bias,
               float* y);

// GEMM block: y[i * ldy + r] = x[i] . w[r] (+ bias[r]) for i < n, r < rows. x: (n, k) row-major;
// w: rows of k f32 or bf16 (bf16) elements, ldw elements apart; bias: (rows) or null.
void linear_block_neon(const float* x, int64_t n, int64_t k, const void* w, bool bf16, int64_t ldw,
                       int64_t rows, const float* bias, float* y, int64_t ldy);

// f16 bits -> float32 (exact, as f16_to_float), n values.
void f16_to_f32_neon(const uint16_t* src, int64_t n, float* dst);

}  // namespace cpu
}  // namespace sr3d
