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

// Where an allocation comes from (alloc_checked).
enum class MemoryKind {
  kDevice,         // cudaMalloc
  kStreamOrdered,  // cudaMallocAsync on a stream (falls back to kDevice without memory pools)
  kPinnedHost,     // cudaMallocHost (on a Jetson, the same shared DRAM as the GPU's)
  kMappedHost,     // cudaHostAlloc(cudaHostAllocMapped): pinned and in the GPU's address space
};

// The one allocation helper: every device (and pinned host) allocation of the engine and
// the ops goes through it. Out of memory (cudaErrorMemoryAllocation) clears the error and
// throws ErrorKind::kCudaOutOfMemory with the bytes asked for, the bytes free
// (cudaMemGetInfo: on a Jetson the pool shared with the CPU) and what to do about it; other
// failures throw the usual CUDA error. Returns the memory; *used says which kind served a
// kStreamOrdered request.
void* alloc_checked(size_t bytes, MemoryKind kind, cudaStream_t stream, MemoryKind* used,
                    const char* file, int line);

// Out-of-memory error of `call` asking for `bytes` (alloc_checked's; public for the tests).
[[noreturn]] void throw_out_of_memory(size_t bytes, const char* call, const char* file, int line);

// Zero-copy host memory. On an integrated GPU (cudaDeviceProp::integrated: Jetson) device
// memory is the same DRAM as host memory, so uploading an input is a DRAM-to-DRAM copy. With
// zero copy on, the host round trips (RoundTrip) map the caller's arrays into the device
// address space instead (cudaHostRegister, mapped) and the kernels read and write them in
// place, and the CUDA engine keeps its per-step host buffers (token ids, logits, ...) in
// mapped pinned memory (cudaHostAlloc(cudaHostAllocMapped)) that the kernels use directly.
// SR3D_ZERO_COPY: unset (or empty) = on where the GPU is integrated and can map host memory
// (cudaDevAttrIntegrated, cudaDevAttrCanMapHostMemory), off on discrete GPUs; 0 = off; 1 (or
// the older spelling "force") = on for any GPU that can map host memory (over PCIe: slow,
// only to test the path). Another value is an invalid-argument error naming the variable.
// Read on every call, so tests can switch it; an engine decides once, when it is created.
bool zero_copy_enabled();
// The same decision for device `dev` from its attributes, without throwing: false for an
// invalid SR3D_ZERO_COPY (the ops report that one). devices() reports it.
bool zero_copy_for(bool integrated, bool can_map_host_memory);
// An off-by-default switch read from the environment (SR3D_CUDA_GRAPH, SR3D_CUDA_TC): false
// when `name` is unset, empty or "0", true for "1"; another value is an invalid-argument error
// naming the variable, with `expected` saying what the values mean. Read on every call.
bool env_switch(const char* name, const char* expected);
// 16-byte alignment, what the kernels' vector loads need.
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
// CUDA-graph decode: the CUDA engine's decode step captured once per KV-length bucket and
// replayed (engine_cuda.cu). SR3D_CUDA_GRAPH: unset, empty or 0 = off (the launch-by-launch path,
// the default until a device run has checked the graph), 1 = on; another value is an
// invalid-argument error naming the variable. Read on every call (so tests can switch it); an
// engine decides once, when it is created. set_cuda_graph_mode (a test hook, process-wide)
// overrides the variable: kFailCapture is on with every capture made to fail, which checks the
// engine's fallback to the plain path.
enum class CudaGraphMode { kOff, kOn, kFailCapture };
CudaGraphMode cuda_graph_mode();
void set_cuda_graph_mode(CudaGraphMode mode);
void clear_cuda_graph_mode();  // back to SR3D_CUDA_GRAPH
// What the engines did with graphs in this process (tests check that a replay really ran, or
// that a failed capture fell back); counted by the engines, never reset.
struct CudaGraphStats {
  int64_t captured = 0;  // decode graphs instantiated
  int64_t replayed = 0;  // decode steps run as one graph launch
  int64_t failed = 0;    // captures, instantiations or launches that failed (plain path instead)
};
CudaGraphStats cuda_graph_stats();
enum class CudaGraphEvent { kCaptured, kReplayed, kFailed };
void count_cuda_graph(CudaGraphEvent e);

// The device address of [h, h + bytes) registered as mapped host memory, or null when the
// registration fails (already registered, read-only pages, unsupported): the caller copies.
void* map_host(void* h, size_t bytes);
// Undoes map_host (errors dropped and cleared: nobody to report them to).
void unmap_host(void* h) noexcept;

// RAII device allocation. Never throws from the destructor (the free's error is dropped:
// there is nobody to report it to, and throwing there would terminate).
// With a stream, memory comes from the stream-ordered pool (cudaMallocAsync: ~1 us, and
// the free does not synchronize the device), falling back to cudaMalloc where memory pools
// are unsupported. The scratch of the multi-launch ops is allocated this way.
// map() makes a buffer that is a view of host memory (zero-copy, see zero_copy_enabled):
// releasing it waits for its stream, then unregisters the host range.
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
        pooled_(std::exchange(o.pooled_, false)),
        host_(std::exchange(o.host_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
      stream_ = o.stream_;
      pooled_ = std::exchange(o.pooled_, false);
      host_ = std::exchange(o.host_, nullptr);
    }
    return *this;
  }

  // Frees the old allocation; count 0 leaves a null buffer (nothing to launch on).
  void allocate(size_t count) {
    release();
    if (count == 0) return;
    ptr_ = static_cast<T*>(
        alloc_checked(count * sizeof(T), MemoryKind::kDevice, nullptr, nullptr, __FILE__, __LINE__));
    count_ = count;
  }
  void allocate(size_t count, cudaStream_t stream) {
    release();
    if (count == 0) return;
    MemoryKind used = MemoryKind::kDevice;
    ptr_ = static_cast<T*>(alloc_checked(count * sizeof(T), MemoryKind::kStreamOrdered, stream,
                                         &used, __FILE__, __LINE__));
    count_ = count;
    stream_ = stream;
    pooled_ = used == MemoryKind::kStreamOrdered;
  }
  // A view of count elements at host h (kernels on `stream` read and write h itself), or a
  // null buffer when h cannot be mapped.
  static DeviceBuffer map(T* h, size_t count, cudaStream_t stream) {
    DeviceBuffer b;
    if (count == 0 || !h) return b;
    void* d = map_host(h, count * sizeof(T));
    if (!d) return b;
    b.ptr_ = static_cast<T*>(d);
    b.count_ = count;
    b.stream_ = stream;
    b.host_ = h;
    return b;
  }
  void release() noexcept {
    if (host_) {
      // The kernels of the stream may still use the mapping (an op that threw midway).
      if (cudaStreamSynchronize(stream_) != cudaSuccess) (void)cudaGetLastError();
      unmap_host(host_);
    } else if (ptr_ && (pooled_ ? cudaFreeAsync(ptr_, stream_) : cudaFree(ptr_)) != cudaSuccess) {
      // A failed free leaves the thread's last-error slot set; clear it so the next
      // launch_checked does not report it as that kernel's launch error.
      (void)cudaGetLastError();
    }
    ptr_ = nullptr;
    count_ = 0;
    pooled_ = false;
    host_ = nullptr;
  }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }
  // True when this buffer is the mapped view of host memory at h.
  bool maps(const void* h) const { return host_ != nullptr && host_ == h; }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
  cudaStream_t stream_ = nullptr;
  bool pooled_ = false;
  void* host_ = nullptr;  // mapped view: the registered host address
};

// Host memory the CUDA engine owns and the GPU reads or writes on every call (token ids,
// logits, ...). Pinned (cudaMallocHost) on the copy path; under zero copy mapped pinned
// memory (cudaHostAlloc(cudaHostAllocMapped)) whose device() address the kernels use in
// place of a device buffer and a copy. Grow-only; freed in the destructor (cudaFreeHost
// waits for the device). The host reads it only after a stream synchronize and writes it
// only while no queued kernel still reads it.
template <typename T>
class HostBuffer {
 public:
  HostBuffer() = default;
  ~HostBuffer() { release(); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  // At least count elements (a larger earlier allocation is kept). mapped: device() is the
  // GPU's address of the memory, or null when the driver does not give one (the caller copies).
  void reserve(size_t count, bool mapped) {
    if (count <= count_ && mapped == mapped_) return;
    release();
    if (count == 0) return;
    host_ = static_cast<T*>(alloc_checked(count * sizeof(T),
                                          mapped ? MemoryKind::kMappedHost : MemoryKind::kPinnedHost,
                                          nullptr, nullptr, __FILE__, __LINE__));
    count_ = count;
    mapped_ = mapped;
    void* d = nullptr;
    if (mapped && cudaHostGetDevicePointer(&d, host_, 0) == cudaSuccess) device_ = static_cast<T*>(d);
    else if (mapped) (void)cudaGetLastError();
  }
  void release() noexcept {
    if (host_ && cudaFreeHost(host_) != cudaSuccess) (void)cudaGetLastError();
    host_ = nullptr;
    device_ = nullptr;
    count_ = 0;
    mapped_ = false;
  }
  T* host() const { return host_; }
  T* device() const { return device_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* host_ = nullptr;
  T* device_ = nullptr;
  size_t count_ = 0;
  bool mapped_ = false;
};

// The host side of the _host entry points, on one stream. An input becomes device memory
// (mapped in place under zero copy, else a stream-ordered copy); an output is the mapped
// host array or device memory; to_host copies back unless the buffer maps the destination.
// copy = true never maps (an input the op then overwrites in place on the device).
template <typename T>
DeviceBuffer<T> to_device(const T* h, int64_t count, cudaStream_t s, bool copy = false) {
  if (count > 0 && !copy && zero_copy_enabled()) {
    DeviceBuffer<T> m = DeviceBuffer<T>::map(const_cast<T*>(h), static_cast<size_t>(count), s);
    if (m.get()) return m;
  }
  DeviceBuffer<T> d(static_cast<size_t>(count), s);
  if (count > 0)
    check(cudaMemcpyAsync(d.get(), h, d.bytes(), cudaMemcpyHostToDevice, s),
          "cudaMemcpyAsync(d.get(), h, d.bytes(), cudaMemcpyHostToDevice, s)", __FILE__, __LINE__);
  return d;
}
template <typename T>
DeviceBuffer<T> output_for(T* h, int64_t count, cudaStream_t s) {
  if (count > 0 && zero_copy_enabled()) {
    DeviceBuffer<T> m = DeviceBuffer<T>::map(h, static_cast<size_t>(count), s);
    if (m.get()) return m;
  }
  return DeviceBuffer<T>(static_cast<size_t>(count), s);
}
// Queues the copy of d to h (no wait); nothing when d is h mapped.
template <typename T>
void to_host(T* h, const DeviceBuffer<T>& d, cudaStream_t s) {
  if (d.size() > 0 && !d.maps(h))
    check(cudaMemcpyAsync(h, d.get(), d.bytes(), cudaMemcpyDeviceToHost, s),
          "cudaMemcpyAsync(h, d.get(), d.bytes(), cudaMemcpyDeviceToHost, s)", __FILE__, __LINE__);
}

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

// The host round trip of every _host entry point (the nn ops' and the geometry, tiling and
// region ops': the native ops' Impl::kCuda path, tests, microbenchmarks): the selected device
// made current, a fresh stream, inputs uploaded, the op launched on stream(), outputs
// downloaded. download() synchronizes; the Stream destructor waits for anything still in
// flight when the op throws. Under zero copy (zero_copy_enabled) upload / output map the
// host arrays instead, so an op must not write into an uploaded input: it writes into
// output(), or into upload(..., copy = true) when it works in place on a private copy.
class RoundTrip {
 public:
  RoundTrip() : device_selected_((use_selected_device(), true)) {}
  cudaStream_t stream() const { return stream_.get(); }

  // A device view of count elements at h, read-only to the op (a null buffer for count 0).
  template <typename T>
  DeviceBuffer<T> upload(const T* h, int64_t count, bool copy = false) {
    return to_device(h, count, stream(), copy);
  }
  // Uninitialized device scratch of count elements.
  template <typename T>
  DeviceBuffer<T> scratch(int64_t count) {
    return DeviceBuffer<T>(static_cast<size_t>(count), stream());
  }
  // An array the op updates in place: h mapped (the op writes h itself), or a device copy.
  template <typename T>
  DeviceBuffer<T> inout(T* h, int64_t count) {
    return to_device(h, count, stream());
  }
  // Where the op writes its result for h (h mapped, or device memory download() copies).
  template <typename T>
  DeviceBuffer<T> output(T* h, int64_t count) {
    return output_for(h, count, stream());
  }
  // Copies d to h (unless d maps h) and waits for the stream.
  template <typename T>
  void download(T* h, const DeviceBuffer<T>& d) {
    to_host(h, d, stream());
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
