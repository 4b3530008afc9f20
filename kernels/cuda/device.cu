// Device queries for the CUDA build (the CPU build uses kernels/cpu/device_cpu.cc).
#ifdef SR3D_WITH_CUDA
#include "../device.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_util.h"

#ifndef SR3D_CUDA_ARCHS
#define SR3D_CUDA_ARCHS "unknown"
#endif

namespace sr3d {

namespace {

struct CompiledArch {
  int cc;       // 75, 87, 90, 100, ...
  char suffix;  // 0; 'a': "90a" runs on exactly that chip; 'f': "100f" on its family
};

// "75;87;90" (also "," separated, "-real"/"-virtual" suffixes tolerated).
std::vector<CompiledArch> compiled_archs() {
  std::vector<CompiledArch> out;
  const std::string s = SR3D_CUDA_ARCHS;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] < '0' || s[i] > '9') { ++i; continue; }
    int v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
    const char suffix = i < s.size() && (s[i] == 'a' || s[i] == 'f') ? s[i] : 0;
    while (i < s.size() && s[i] != ';' && s[i] != ',') ++i;  // skip "-real" etc.
    out.push_back({v, suffix});
  }
  return out;
}

// Does SASS (or PTX) compiled for `a` run on compute capability major.minor?
// SASS sm_XY runs on X.Z with Z >= Y (same major); "XYa" only on X.Y; "XYf" on the
// family X.Z, Z >= Y.
bool sass_runs(const CompiledArch& a, int major, int minor) {
  if (a.suffix == 'a') return a.cc == major * 10 + minor;
  return a.cc / 10 == major && a.cc % 10 <= minor;
}

// The build compiles SASS for every listed arch and PTX for the LAST listed one
// (CMakeLists.txt: list(GET SR3D_ARCHS -1 ...)), which JIT-compiles for anything at least
// as new (a/f PTX: only what its SASS would run on). With "75;80;87;90": 7.5, 8.x, 9.0 and
// newer run.
bool can_run(int major, int minor, const std::vector<CompiledArch>& archs, std::string* why) {
  if (archs.empty()) return true;  // unknown archs: let the first launch tell
  const int cc = major * 10 + minor;
  for (const CompiledArch& a : archs)
    if (sass_runs(a, major, minor)) return true;
  const CompiledArch& ptx = archs.back();
  if (ptx.suffix == 0 && cc >= ptx.cc) return true;
  if (why)
    *why = "compute capability " + std::to_string(major) + "." + std::to_string(minor) +
           " has no kernel image in this build (archs " + SR3D_CUDA_ARCHS +
           "); rebuild with SR3D_CUDA_ARCHS including " + std::to_string(cc);
  return false;
}

}  // namespace

BuildInfo build_info() {
  BuildInfo b;
  b.cuda_compiled = true;
  b.cuda_runtime_version = CUDART_VERSION;
  b.cuda_archs = SR3D_CUDA_ARCHS;
  return b;
}

std::vector<CudaDeviceInfo> cuda_devices(std::string* error, bool with_free_memory) {
  std::vector<CudaDeviceInfo> out;
  std::string why;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (error) *error = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    return out;
  }
  if (count == 0) {
    if (error) *error = "no CUDA device found";
    return out;
  }
  const std::vector<CompiledArch> archs = compiled_archs();
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, i);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      why = "device " + std::to_string(i) + ": " + cudaGetErrorString(err);
      continue;
    }
    std::string reason;
    if (!can_run(prop.major, prop.minor, archs, &reason)) {
      why = "device " + std::to_string(i) + " (" + prop.name + "): " + reason;
      continue;
    }
    CudaDeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.total_memory = prop.totalGlobalMem;
    d.major = prop.major;
    d.minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    d.integrated = prop.integrated != 0;
    d.can_map_host_memory = prop.canMapHostMemory != 0;
    d.zero_copy = cuda::zero_copy_for(d.integrated, d.can_map_host_memory);
    if (with_free_memory) {
      int previous = 0;
      size_t free_b = 0, total_b = 0;
      if (cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(i) == cudaSuccess &&
          cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        d.free_memory = static_cast<int64_t>(free_b);
      } else {
        (void)cudaGetLastError();
      }
      (void)cudaSetDevice(previous);
    }
    out.push_back(d);
  }
  if (out.empty() && error) *error = why;
  return out;
}

int cuda_driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return v;
}

void cuda_set_device(int index) {
  int count = 0;
  SR3D_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (index < 0 || index >= count)
    throw_invalid_argument("a CUDA device index in [0, " + std::to_string(count) + ")",
                           "device", std::to_string(index));
  // Attributes, not cudaGetDeviceProperties: this runs before every op (on whichever libuv
  // thread gets it), and the full property query is far slower.
  int major = 0, minor = 0;
  SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index));
  SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index));
  std::string why;
  if (!can_run(major, minor, compiled_archs(), &why)) {
    cudaDeviceProp prop;
    SR3D_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
    throw_invalid_argument("a CUDA device this build can run on", "device",
                           std::to_string(index) + " (" + prop.name + "): " + why);
  }
  SR3D_CUDA_CHECK(cudaSetDevice(index));
  cuda::set_selected_device(index);
}

}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
