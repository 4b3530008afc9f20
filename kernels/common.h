// Shared plumbing for every sr3d kernel: error types, dtypes, the CPU thread pool.
// Kernels are plain C++ (no Node): the N-API binding and the standalone test/bench
// executable both call them. Kernels never abort: broken invariants throw sr3d::Error,
// which the callers turn into typed errors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

// Marks small inline helpers that CUDA kernels call too (shared per-element math).
#if defined(__CUDACC__)
#define SR3D_HOST_DEVICE __host__ __device__
#else
#define SR3D_HOST_DEVICE
#endif

namespace sr3d {

// kCudaOutOfMemory: a CUDA allocation failed for lack of memory (a kCuda error that also
// carries the bytes asked for and free, and says what to do).
enum class ErrorKind { kInvalidArgument, kCuda, kInternal, kCudaOutOfMemory };

struct Error : std::runtime_error {
  ErrorKind kind;
  // CUDA errors carry where they happened (the failing call, file:line, device).
  std::string call, file;
  int line = 0, device = -1;
  // kCudaOutOfMemory: bytes asked for, free and total on the device (-1 = unknown).
  int64_t requested_bytes = -1, free_bytes = -1, total_bytes = -1;
  Error(ErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

// `Expected <what> for <name> but received <value>`: the one message shape of every
// argument error (the TypeScript layer uses the same helper text).
[[noreturn]] void throw_invalid_argument(const std::string& what, const std::string& name,
                                         const std::string& received);
[[noreturn]] void throw_internal(const std::string& msg);
// The same message about an argument whose rule another layer owns (`owner`, e.g. the
// TypeScript Engine, which gives users the typed error first): reaching this check means a
// caller skipped that layer, a bug in sr3d, so it is kInternal (InternalError in JS), not
// kInvalidArgument.
[[noreturn]] void throw_internal_argument(const std::string& what, const std::string& name,
                                          const std::string& received, const std::string& owner);
// Impl::kCuda asked of a binary built without CUDA.
[[noreturn]] void throw_cpu_only_build();

enum class DType { kFloat32, kUint16, kUint8 };
const char* dtype_name(DType d);
// Shortest round-trip-ish text of a number for error messages ("0", "2.5", "NaN").
std::string format_number(double v);

// Which implementation of an op runs. kReference is the deliberately plain loop the
// fast paths are tested against; kFast is the multithreaded, vectorizable CPU path;
// kCuda runs on the current CUDA device (only in builds with SR3D_WITH_CUDA).
enum class Impl { kReference, kFast, kCuda };

// The one Impl switch of every op's dispatcher:
//   return run_impl(impl, [&] { return cpu::op_reference(...); },
//                   [&] { return cpu::op_fast(...); }, SR3D_CUDA_PATH(cuda::op_host(...)));
// SR3D_CUDA_PATH drops its call in builds without CUDA (the cuda:: entry points are not
// declared there), and run_impl then answers Impl::kCuda with throw_cpu_only_build().
#ifdef SR3D_WITH_CUDA
#define SR3D_CUDA_PATH(...) [&] { return __VA_ARGS__; }
#else
#define SR3D_CUDA_PATH(...) nullptr
#endif
template <class Reference, class Fast, class Cuda>
auto run_impl(Impl impl, Reference&& reference, Fast&& fast, Cuda&& cuda)
    -> decltype(reference()) {
  if (impl == Impl::kReference) return reference();
  if (impl == Impl::kFast) return fast();
  if constexpr (std::is_same_v<std::decay_t<Cuda>, std::nullptr_t>) {
    throw_cpu_only_build();
  } else {
    return cuda();
  }
}

// ---- CPU parallelism -------------------------------------------------------------
// A small persistent pool. parallel_for splits [0, n) into `chunks` contiguous ranges
// (default: one per thread) and runs fn(chunk_index, begin, end) on the pool, blocking
// until all are done. Nested calls run serially. Exceptions from fn are rethrown on the
// calling thread (the first one wins).
int cpu_threads();                 // SR3D_NUM_THREADS or hardware concurrency
void set_cpu_threads(int n);       // 0 = default
void parallel_for(int64_t n, int chunks,
                  const std::function<void(int chunk, int64_t begin, int64_t end)>& fn);
// Best vector ISA the fast CPU paths dispatch to on this machine ("avx512", "avx2", "sse2", "neon", "scalar").
const char* cpu_simd();
// The vector features this CPU has, as detected at run time: x86-64 "sse2" "avx2" "fma"
// "avx512f" "avx512vl"; aarch64 (getauxval) "asimd" "fp16" (fphp + asimdhp) "dotprod" "bf16"
// "sve". Which of them the fast paths use is cpu_simd() plus the notes at each kernel.
std::vector<std::string> cpu_features();
// True when the hand-written NEON kernels run (aarch64 with Advanced SIMD, SR3D_CPU_ISA not
// "portable"); false elsewhere and for the portable fallback.
bool cpu_neon();

}  // namespace sr3d
