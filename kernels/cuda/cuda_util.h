// CUDA plumbing shared by every kernels/cuda/*.cu file (and the kernel test executable):
// checked calls that throw sr3d::Error(kCuda) instead of aborting, one checked launch
// helper, RAII device memory and streams. Include only in SR3D_WITH_CUDA builds.
//
// Host-compiler safe: the launch helper is only visible to nvcc (__CUDACC__), everything
// else compiles with g++ against the CUDA include directory.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "../common.h"

namespace sr3d {
namespace cuda {

// Builds and throws the typed error: message "CUDA error <name> (<text>) in `<call>` at
// file:line on device N". Clears the (non-sticky) last-error state first, so one failed
// call does not poison the next unrelated check; sticky errors (a kernel fault) stay, as
// the context is unusable after them anyway.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

inline void check(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) throw_cuda_error(err, call, file, line);
}

// The device Impl::kCuda work runs on for the calling thread (cuda_set_device), and making
// it current before a _host op.
int selected_device();
void set_selected_device(int index);
void use_selected_device();

// RAII device allocation. Never throws from the destructor (the free's error is dropped:
// there is nobody to report it to, and throwing there would terminate).
// With a stream, memory comes from the stream-ordered pool (cudaMallocAsync: ~1 us, and
// the free does not synchronize the device), falling back to cudaMalloc where memory pools
// are unsupported. The scratch of the multi-launch ops is allocated this way.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { allocate(count); }
  DeviceBuffer(size_t count, cudaStream_t stream) { allocate(count, stream); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)),
        count_(std::exchange(o.count_, 0)),
        stream_(o.stream_),
        pooled_(std::exchange(o.pooled_, false)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
      stream_ = o.stream_;
      pooled_ = std::exchange(o.pooled_, false);
    }
    return *this;
  }

  // Frees the old allocation; count 0 leaves a null buffer (nothing to launch on).
  void allocate(size_t count) {
    release();
    if (count == 0) return;
    void* p = nullptr;
    check(cudaMalloc(&p, count * sizeof(T)), "cudaMalloc(&p, count * sizeof(T))", __FILE__,
          __LINE__);
    ptr_ = static_cast<T*>(p);
    count_ = count;
  }
  void allocate(size_t count, cudaStream_t stream) {
    release();
    if (count == 0) return;
    void* p = nullptr;
    cudaError_t err = cudaMallocAsync(&p, count * sizeof(T), stream);
    if (err == cudaErrorNotSupported) {  // no memory pools on this device/driver
      (void)cudaGetLastError();
      allocate(count);
      return;
    }
    check(err, "cudaMallocAsync(&p, count * sizeof(T), stream)", __FILE__, __LINE__);
    ptr_ = static_cast<T*>(p);
    count_ = count;
    stream_ = stream;
    pooled_ = true;
  }
  void release() noexcept {
    // A failed free leaves the thread's last-error slot set; clear it so the next
    // launch_checked does not report it as that kernel's launch error.
    if (ptr_ && (pooled_ ? cudaFreeAsync(ptr_, stream_) : cudaFree(ptr_)) != cudaSuccess)
      (void)cudaGetLastError();
    ptr_ = nullptr;
    count_ = 0;
    pooled_ = false;
  }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
  cudaStream_t stream_ = nullptr;
  bool pooled_ = false;
};

// RAII stream for the _host ops (non-blocking: no implicit sync with the legacy stream,
// so concurrent host calls from several threads overlap).
class Stream {
 public:
  Stream() {
    check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking),
          "cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)", __FILE__, __LINE__);
  }
  // Waits for the stream first: when an op throws after queuing copies into host memory,
  // none may still be in flight once the caller gets the exception back (a no-op on the
  // success paths, which synchronized already). Errors are dropped (and cleared).
  ~Stream() {
    if (!s_) return;
    cudaError_t e1 = cudaStreamSynchronize(s_), e2 = cudaStreamDestroy(s_);
    if (e1 != cudaSuccess || e2 != cudaSuccess) (void)cudaGetLastError();
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// The host round trip of a _host entry point (tests, microbenchmarks): the selected device
// made current, a fresh stream, inputs uploaded, the op launched on stream(), outputs
// downloaded. download() synchronizes; the Stream destructor waits for anything still in
// flight when the op throws.
class RoundTrip {
 public:
  RoundTrip() : device_selected_((use_selected_device(), true)) {}
  cudaStream_t stream() const { return stream_.get(); }

  // A device copy of count elements at h (a null buffer for count 0).
  template <typename T>
  DeviceBuffer<T> upload(const T* h, int64_t count) {
    DeviceBuffer<T> d(static_cast<size_t>(count), stream());
    if (count > 0)
      check(cudaMemcpyAsync(d.get(), h, d.bytes(), cudaMemcpyHostToDevice, stream()),
            "cudaMemcpyAsync(d.get(), h, d.bytes(), cudaMemcpyHostToDevice, stream())", __FILE__,
            __LINE__);
    return d;
  }
  // Uninitialized device output / scratch of count elements.
  template <typename T>
  DeviceBuffer<T> scratch(int64_t count) {
    return DeviceBuffer<T>(static_cast<size_t>(count), stream());
  }
  // Copies d to h and waits for the stream.
  template <typename T>
  void download(T* h, const DeviceBuffer<T>& d) {
    if (d.size() > 0)
      check(cudaMemcpyAsync(h, d.get(), d.bytes(), cudaMemcpyDeviceToHost, stream()),
            "cudaMemcpyAsync(h, d.get(), d.bytes(), cudaMemcpyDeviceToHost, stream())", __FILE__,
            __LINE__);
    check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize(stream())", __FILE__, __LINE__);
  }

 private:
  bool device_selected_;  // use_selected_device() runs before the stream is created
  Stream stream_;
};

// Threads per block for the elementwise kernels; blocks for grid-stride reductions.
constexpr int kBlock = 256;
inline unsigned grid_for(int64_t n, int block = kBlock) {
  int64_t g = (n + block - 1) / block;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 0x7fffffff ? 0x7fffffff : g));
}

}  // namespace cuda
}  // namespace sr3d

// Checked runtime call: SR3D_CUDA_CHECK(cudaMemcpyAsync(...)).
#define SR3D_CUDA_CHECK(expr) ::sr3d::cuda::check((expr), #expr, __FILE__, __LINE__)

#ifdef __CUDACC__
namespace sr3d {
namespace cuda {
// The one way kernels are launched: explicit stream, launch errors (bad configuration,
// no kernel image for this device) checked right after, named after the kernel.
template <typename... KernelArgs, typename... Args>
void launch_checked(const char* name, const char* file, int line, void (*kernel)(KernelArgs...),
                    dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                    Args&&... args) {
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  check(cudaGetLastError(), name, file, line);
}
}  // namespace cuda
}  // namespace sr3d
#define SR3D_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                          \
  ::sr3d::cuda::launch_checked(#kernel "<<<>>>", __FILE__, __LINE__, kernel, grid, block,     \
                               shared_bytes, stream, __VA_ARGS__)
#endif
