// What this binary was built with and which CUDA devices it can use.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sr3d {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  uint64_t total_memory = 0;  // bytes
  int major = 0, minor = 0;   // compute capability
  int multiprocessors = 0;
  // Jetson (Orin, Thor): the GPU shares DRAM with the CPU (cudaDeviceProp::integrated), so
  // host memory mapped into the GPU needs no copy and "free memory" is the shared pool.
  bool integrated = false;
  bool can_map_host_memory = false;
  // The engine and the ops use mapped host memory instead of copies on this device
  // (SR3D_ZERO_COPY: unset = integrated GPUs only, 0 = never, 1 = any GPU that can map).
  bool zero_copy = false;
  int64_t free_memory = -1;  // bytes (cudaMemGetInfo), -1 when not asked for
};

struct BuildInfo {
  bool cuda_compiled = false;
  int cuda_runtime_version = 0;  // e.g. 13000 (CUDART_VERSION the binary was built with)
  std::string cuda_archs;        // "75;87;90" (the SASS/PTX targets compiled in)
};

BuildInfo build_info();
// Usable CUDA devices; empty in a CPU build, without a driver, or without a device.
// Never throws, never aborts; `error` (if non-null) receives why the list is empty.
// with_free_memory: also query each device's free memory (cudaMemGetInfo creates the device's
// primary context, ~100s of MB on a discrete GPU, so it is asked for only by `sr3d info`).
std::vector<CudaDeviceInfo> cuda_devices(std::string* error = nullptr, bool with_free_memory = false);
int cuda_driver_version();  // 0 when unavailable
// Selects the device for Impl::kCuda work on the calling thread (default 0).
void cuda_set_device(int index);

}  // namespace sr3d
