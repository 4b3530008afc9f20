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
};

struct BuildInfo {
  bool cuda_compiled = false;
  int cuda_runtime_version = 0;  // e.g. 13000 (CUDART_VERSION the binary was built with)
  std::string cuda_archs;        // "75;87;90" (the SASS/PTX targets compiled in)
};

BuildInfo build_info();
// Usable CUDA devices; empty in a CPU build, without a driver, or without a device.
// Never throws, never aborts; `error` (if non-null) receives why the list is empty.
std::vector<CudaDeviceInfo> cuda_devices(std::string* error = nullptr);
int cuda_driver_version();  // 0 when unavailable
// Selects the device for Impl::kCuda work on the calling thread (default 0).
void cuda_set_device(int index);

}  // namespace sr3d
