// Error plumbing and the per-thread device selection of cuda_util.h.
#ifdef SR3D_WITH_CUDA
#include "cuda_util.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace sr3d {
namespace cuda {

namespace {
thread_local int tl_device = 0;  // cuda_set_device: per calling thread, default 0
}

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  (void)cudaGetLastError();  // clear the last-error slot (sticky errors stay)
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess) {
    device = -1;
    (void)cudaGetLastError();
  }
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + " (" +
                    cudaGetErrorString(err) + ") in `" + call + "` at " + file + ":" +
                    std::to_string(line) + " on device " + std::to_string(device);
  Error e(ErrorKind::kCuda, msg);
  e.call = call;
  e.file = file;
  e.line = line;
  e.device = device;
  throw e;
}

namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

const char* alloc_call(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kDevice: return "cudaMalloc(&p, bytes)";
    case MemoryKind::kStreamOrdered: return "cudaMallocAsync(&p, bytes, stream)";
    case MemoryKind::kPinnedHost: return "cudaMallocHost(&p, bytes)";
    case MemoryKind::kMappedHost: return "cudaHostAlloc(&p, bytes, cudaHostAllocMapped)";
  }
  return "cudaMalloc(&p, bytes)";
}

}  // namespace

void throw_out_of_memory(size_t bytes, const char* call, const char* file, int line) {
  (void)cudaGetLastError();  // the allocation failure is not sticky: clear it
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess) {
    device = -1;
    (void)cudaGetLastError();
  }
  size_t free_b = 0, total_b = 0;
  int64_t free_bytes = -1, total_bytes = -1;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
    free_bytes = static_cast<int64_t>(free_b);
    total_bytes = static_cast<int64_t>(total_b);
  } else {
    (void)cudaGetLastError();
  }
  const int64_t asked = static_cast<int64_t>(bytes);
  std::string msg = "CUDA out of memory on device " + std::to_string(device) + ": asked for " +
                    gib(asked) + " (" + std::to_string(asked) + " bytes) in `" + call + "` with ";
  msg += free_bytes >= 0 ? gib(free_bytes) + " (" + std::to_string(free_bytes) + " bytes) free of " +
                               gib(total_bytes)
                         : std::string("an unknown amount free");
  msg += ". Fix: a smaller maxContext (the KV cache grows with it), fewer frames or tiles per "
         "request, int4 weights, or close other processes using the GPU (on a Jetson the GPU "
         "shares system memory with the CPU: memory-hungry CPU programs count too).";
  Error e(ErrorKind::kCudaOutOfMemory, msg);
  e.call = call;
  e.file = file;
  e.line = line;
  e.device = device;
  e.requested_bytes = asked;
  e.free_bytes = free_bytes;
  e.total_bytes = total_bytes;
  throw e;
}

void* alloc_checked(size_t bytes, MemoryKind kind, cudaStream_t stream, MemoryKind* used,
                    const char* file, int line) {
  void* p = nullptr;
  cudaError_t err = cudaSuccess;
  if (kind == MemoryKind::kStreamOrdered) {
    err = cudaMallocAsync(&p, bytes, stream);
    if (err == cudaErrorNotSupported) {  // no memory pools on this device/driver
      (void)cudaGetLastError();
      kind = MemoryKind::kDevice;
    }
  }
  if (kind == MemoryKind::kDevice) err = cudaMalloc(&p, bytes);
  if (kind == MemoryKind::kPinnedHost) err = cudaMallocHost(&p, bytes);
  if (kind == MemoryKind::kMappedHost) err = cudaHostAlloc(&p, bytes, cudaHostAllocMapped);
  if (err == cudaErrorMemoryAllocation) throw_out_of_memory(bytes, alloc_call(kind), file, line);
  check(err, alloc_call(kind), file, line);
  if (used) *used = kind;
  return p;
}

namespace {

// Per device: 1 zero copy by default (integrated, can map host memory), 0 not, -1 not asked.
std::mutex g_zero_copy_mu;
std::vector<int> g_integrated, g_can_map;

void device_caps(int dev, bool* integrated, bool* can_map) {
  std::lock_guard<std::mutex> lock(g_zero_copy_mu);
  if (static_cast<int>(g_integrated.size()) <= dev) {
    g_integrated.resize(dev + 1, -1);
    g_can_map.resize(dev + 1, -1);
  }
  if (g_integrated[dev] < 0) {
    int integ = 0, map = 0;
    SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&integ, cudaDevAttrIntegrated, dev));
    SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&map, cudaDevAttrCanMapHostMemory, dev));
    g_integrated[dev] = integ ? 1 : 0;
    g_can_map[dev] = map ? 1 : 0;
  }
  *integrated = g_integrated[dev] == 1;
  *can_map = g_can_map[dev] == 1;
}

enum class ZeroCopyMode { kAuto, kOff, kOn, kInvalid };
ZeroCopyMode zero_copy_mode(std::string* value) {
  const char* v = std::getenv("SR3D_ZERO_COPY");
  if (!v || !*v) return ZeroCopyMode::kAuto;
  if (std::strcmp(v, "0") == 0) return ZeroCopyMode::kOff;
  if (std::strcmp(v, "1") == 0 || std::strcmp(v, "force") == 0) return ZeroCopyMode::kOn;
  if (value) *value = v;
  return ZeroCopyMode::kInvalid;
}

bool zero_copy_decide(ZeroCopyMode mode, bool integrated, bool can_map) {
  if (mode == ZeroCopyMode::kOn) return can_map;
  return mode == ZeroCopyMode::kAuto && integrated && can_map;
}

}  // namespace

bool zero_copy_for(bool integrated, bool can_map_host_memory) {
  return zero_copy_decide(zero_copy_mode(nullptr), integrated, can_map_host_memory);
}

bool zero_copy_enabled() {
  std::string value;
  const ZeroCopyMode mode = zero_copy_mode(&value);
  if (mode == ZeroCopyMode::kOff) return false;
  if (mode == ZeroCopyMode::kInvalid)
    throw_invalid_argument("0 (copies), 1 (zero copy on any GPU) or unset (zero copy on integrated "
                           "GPUs such as Jetson)", "the environment variable SR3D_ZERO_COPY",
                           "'" + value + "'");
  int dev = 0;
  SR3D_CUDA_CHECK(cudaGetDevice(&dev));
  bool integrated = false, can_map = false;
  device_caps(dev, &integrated, &can_map);
  return zero_copy_decide(mode, integrated, can_map);
}

bool env_switch(const char* name, const char* expected) {
  const char* v = std::getenv(name);
  if (!v || !*v || std::strcmp(v, "0") == 0) return false;
  if (std::strcmp(v, "1") == 0) return true;
  throw_invalid_argument(expected, std::string("the environment variable ") + name,
                         std::string("'") + v + "'");
}

namespace {
// -1: SR3D_CUDA_GRAPH decides; else a CudaGraphMode (set_cuda_graph_mode).
std::atomic<int> g_graph_override{-1};
std::atomic<int64_t> g_graph_captured{0}, g_graph_replayed{0}, g_graph_failed{0};
}  // namespace

CudaGraphMode cuda_graph_mode() {
  const int forced = g_graph_override.load();
  if (forced >= 0) return static_cast<CudaGraphMode>(forced);
  return env_switch("SR3D_CUDA_GRAPH",
                    "0 or unset (decode launch by launch) or 1 (decode steps replayed as CUDA graphs)")
             ? CudaGraphMode::kOn
             : CudaGraphMode::kOff;
}
void set_cuda_graph_mode(CudaGraphMode mode) { g_graph_override.store(static_cast<int>(mode)); }
void clear_cuda_graph_mode() { g_graph_override.store(-1); }

CudaGraphStats cuda_graph_stats() {
  CudaGraphStats s;
  s.captured = g_graph_captured.load();
  s.replayed = g_graph_replayed.load();
  s.failed = g_graph_failed.load();
  return s;
}
void count_cuda_graph(CudaGraphEvent e) {
  switch (e) {
    case CudaGraphEvent::kCaptured: ++g_graph_captured; break;
    case CudaGraphEvent::kReplayed: ++g_graph_replayed; break;
    case CudaGraphEvent::kFailed: ++g_graph_failed; break;
  }
}

void* map_host(void* h, size_t bytes) {
  if (cudaHostRegister(h, bytes, cudaHostRegisterMapped) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  void* d = nullptr;
  if (cudaHostGetDevicePointer(&d, h, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    unmap_host(h);
    return nullptr;
  }
  return d;
}

void unmap_host(void* h) noexcept {
  if (cudaHostUnregister(h) != cudaSuccess) (void)cudaGetLastError();
}

int selected_device() { return tl_device; }
void set_selected_device(int index) { tl_device = index; }
void use_selected_device() { SR3D_CUDA_CHECK(cudaSetDevice(tl_device)); }

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
