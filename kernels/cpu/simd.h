// Internal helpers for the fast CPU paths.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Function multiversioning: the hot loops are compiled for AVX-512, AVX2 and baseline
// x86-64, and the loader picks the best at run time, so one prebuilt binary is fast on
// new CPUs and still runs on old ones. -ffp-contract=off keeps all clones bit-identical.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define SR3D_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SR3D_TARGET_CLONES
#endif

namespace sr3d {
namespace cpu {

// Per-thread SoA scratch for one row / block of points.
struct RowBuffer {
  explicit RowBuffer(int64_t n) : storage(new float[3 * (n > 0 ? n : 1)]) {
    x = storage.get();
    y = x + n;
    z = y + n;
  }
  std::unique_ptr<float[]> storage;
  float *x, *y, *z;
};

void interleave3(const float* x, const float* y, const float* z, int64_t n, float* out);

// The one answer to "which x86 vector ISA may the hand-written kernels run": 2 = AVX-512 (F +
// VL, with AVX2 + FMA), 1 = AVX2 + FMA, 0 = neither (the portable code; always 0 off x86-64).
// SR3D_CPU_ISA=avx2 caps it at 1, SR3D_CPU_ISA=portable at 0 (CTest runs every test executable
// with each cap). Read once per process. Every x86 fast path dispatches on it (linear.cc,
// linear_q.cc, canonicalize.cc); the GCC target_clones loops pick their own clone.
int x86_isa();

// Copies n floats to dst with non-temporal stores where dst is 16-byte aligned (plain
// stores for the unaligned head and the tail). Call stream_fence() before the data is
// read by another thread.
inline void stream_copy(const float* src, int64_t n, float* dst) {
#if defined(__SSE2__)
  int64_t i = 0;
  while (i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15)) { dst[i] = src[i]; ++i; }
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, n * sizeof(float));
#endif
}
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace sr3d
