// Error plumbing and the per-thread device selection of cuda_util.h.
#ifdef SR3D_WITH_CUDA
#include "cuda_util.h"

#include <string>

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

int selected_device() { return tl_device; }
void set_selected_device(int index) { tl_device = index; }
void use_selected_device() { SR3D_CUDA_CHECK(cudaSetDevice(tl_device)); }

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
