// Device queries for builds without CUDA (the CUDA build uses kernels/cuda/device.cu).
#ifndef SR3D_WITH_CUDA
#include "../device.h"
#include "../common.h"

namespace sr3d {
BuildInfo build_info() { return BuildInfo{}; }
std::vector<CudaDeviceInfo> cuda_devices(std::string* error, bool) {
  if (error) *error = "this binary was built without CUDA";
  return {};
}
int cuda_driver_version() { return 0; }
void cuda_set_device(int) { throw_cpu_only_build(); }
}  // namespace sr3d
#endif
