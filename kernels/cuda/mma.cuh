// The warp-level tensor-core primitives of the bf16 GEMM (gemm_tc.cu), one small device
// function each, so the CPU emulator (tests_cpp/emulate/gemm_tc_emu.py) can substitute them:
// everything sm_80+ is here, behind `__CUDA_ARCH__ >= 800`; below that (sm_75 in CI's arch
// list) they compile to nothing, and the runtime dispatch (gemm_tc.cu) never launches the
// kernel there. Internal: include only from kernels/cuda/*.cu.
//
// Fragment layouts of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, from the PTX ISA,
// section 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type" (each
// .bf16x2 register holds two elements, the lower-indexed one in the low 16 bits):
//   groupID = laneid >> 2, threadID_in_group = laneid % 4
//   A (16x16, row): a0..a7 in 4 registers; row = groupID for a0,a1,a4,a5, groupID + 8 for
//     a2,a3,a6,a7; col = threadID_in_group * 2 + (i & 1), + 8 for i >= 4
//   B (16x8, col):  b0..b3 in 2 registers; row (k) = threadID_in_group * 2 + (i & 1), + 8 for
//     i >= 2; col (n) = groupID
//   C/D (16x8 f32): c0..c3; row = groupID for c0,c1, groupID + 8 for c2,c3;
//     col = threadID_in_group * 2 + (i & 1)
// So with A = activations [m][k] and B[k][n] = W[n][k], every register is two consecutive k of
// one row of A or of W: 32-bit shared-memory loads of k-contiguous tiles, no transposes.
#pragma once
#ifdef SR3D_WITH_CUDA
#include <cuda_bf16.h>

#include <cstdint>

// 1 where the tensor-core kernels have their bodies (sm_80+ device code, and the host pass
// that only needs them to parse); 0 for sm_75, whose kernels are empty stubs.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define SR3D_TC_BODY 1
#else
#define SR3D_TC_BODY 0
#endif

namespace sr3d {
namespace cuda {

// d += A . B over one 16x8x16 tile, fp32 accumulation (a, b: the layouts above).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4],
                                               const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// 16 bytes global -> shared without a register round trip (cp.async.cg: L2 only, the tile is
// read once per block); !valid fills the 16 bytes with zeros and reads nothing (src-size 0).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(valid ? 16 : 0)
               : "memory");
#endif
}
// Waits for every cp.async this thread issued (the block barrier after it publishes them).
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Two floats rounded to nearest even into one .bf16x2 register (lo in the low half).
__device__ __forceinline__ uint32_t bf16x2_rn(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
