"""The shared part of the CPU emulators in this folder: a small shim of the CUDA execution model
under which kernel source taken verbatim from kernels/cuda/ compiles with g++ and runs on the
CPU (one std::thread per CUDA thread, a barrier for __syncthreads, another per warp for the
warp-level operations: shuffles, and in gemm_tc_emu.py mma.sync), and the helpers that cut the
source out, compile and run it.

What an emulator proves: indexing, data layout, fragment and reduction logic of the kernel
source as written, against a float64 reference. What it cannot: speed, the real memory model,
the compiler's code, or anything about the hardware beyond the documented semantics the shim
encodes; those are checked by the tests_cpp/*cuda_tests executables on a GPU.
"""
import os
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def between(text, start, end):
    """text from the first `start` up to (not including) the next `end`."""
    a = text.index(start)
    return text[a:text.index(end, a)]


def source(rel):
    return (ROOT / rel).read_text()


# Kernel qualifiers, the vector types, the intrinsics the kernels use, thread / block indices,
# __syncthreads and the warp shuffles (each lane posts its value, then reads its source's).
PRELUDE = r'''
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
struct float4 { float x, y, z, w; };
struct int4 { int32_t x, y, z, w; };
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }
template <class T> T __ldg(const T* p) { T v; std::memcpy(&v, p, sizeof(T)); return v; }
inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
struct Dim { unsigned x = 0, y = 0, z = 0; };
thread_local Dim threadIdx;
Dim blockIdx, blockDim, gridDim;
std::barrier<>* g_block = nullptr;
std::vector<std::unique_ptr<std::barrier<>>> g_warp;
inline void __syncthreads() { g_block->arrive_and_wait(); }
float g_lane[1024];
inline float exchange(float v, int src_lane) {
  const int t = threadIdx.x, w = t / 32;
  g_lane[t] = v;
  g_warp[w]->arrive_and_wait();
  const float r = g_lane[w * 32 + src_lane];
  g_warp[w]->arrive_and_wait();
  return r;
}
inline float __shfl_sync(unsigned, float v, int src) { return exchange(v, src); }
inline float __shfl_xor_sync(unsigned, float v, int o) { return exchange(v, (threadIdx.x & 31) ^ o); }
'''

# run_grid(gx, gy[, gz], threads, f): every block of the grid in turn, its threads concurrently
# (a last partial warp gets a barrier of its size).
RUN_GRID = r'''
template <class F>
void run_grid(unsigned gx, unsigned gy, unsigned gz, unsigned threads, F f) {
  gridDim.x = gx; gridDim.y = gy; gridDim.z = gz; blockDim.x = threads;
  for (unsigned bz = 0; bz < gz; ++bz)
    for (unsigned by = 0; by < gy; ++by)
      for (unsigned bx = 0; bx < gx; ++bx) {
        blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
        std::barrier<> block(threads);
        g_block = &block;
        g_warp.clear();
        for (unsigned w = 0; w < (threads + 31) / 32; ++w)
          g_warp.emplace_back(new std::barrier<>(std::min(32u, threads - 32 * w)));
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < threads; ++t) ts.emplace_back([&, t] { threadIdx.x = t; f(); });
        for (auto& t : ts) t.join();
      }
}
template <class F>
void run_grid(unsigned gx, unsigned gy, unsigned threads, F f) { run_grid(gx, gy, 1, threads, f); }
int fails = 0;
'''


def compile_and_run(src):
    """Builds `src` (PRELUDE + RUN_GRID are the caller's to include) and runs it: its exit status."""
    with tempfile.TemporaryDirectory() as d:
        cc, exe = os.path.join(d, 'emu.cc'), os.path.join(d, 'emu')
        pathlib.Path(cc).write_text(src)
        subprocess.run(['g++', '-std=c++20', '-O1', '-w', '-ffp-contract=off', '-pthread', cc, '-o', exe], check=True)
        return subprocess.run([exe]).returncode
