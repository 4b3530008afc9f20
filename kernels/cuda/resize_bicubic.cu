// resize_bicubic on CUDA: the horizontal pass into a uint8 image of the rows the vertical pass
// reads, then the vertical pass (two launches; the int32 sums make every path bit-identical).
// Bytes: the source once, the output once, plus the intermediate written and read once.
#ifdef SR3D_WITH_CUDA
#include "../resize_bicubic.h"

#include "cuda_util.h"
#include "resample.cuh"

namespace sr3d {
namespace cuda {

namespace {

struct StoreRgb {
  uint8_t* dst;
  int64_t width;
  __device__ void operator()(int64_t y, int64_t x, uint8_t r, uint8_t g, uint8_t b) const {
    uint8_t* o = dst + (y * width + x) * 3;
    o[0] = r;
    o[1] = g;
    o[2] = b;
  }
};

}  // namespace

void resize_bicubic(const ResizeBicubicArgs& a, void* stream) {
  resize_bicubic_check(a);
  cudaStream_t s = as_stream(stream);
  if (a.out_width == a.width && a.out_height == a.height) {  // Pillow returns a copy
    SR3D_CUDA_CHECK(cudaMemcpyAsync(a.dst, a.src, a.height * a.width * 3, cudaMemcpyDeviceToDevice, s));
    return;
  }
  DeviceResample r(a.height, a.width, a.out_height, a.out_width, s);
  resample_launch(a.src, a.width, r, StoreRgb{a.dst, a.out_width}, s);
}

void resize_bicubic_host(const ResizeBicubicArgs& a) {
  resize_bicubic_check(a);
  RoundTrip rt;
  DeviceBuffer<uint8_t> src = rt.upload(a.src, a.height * a.width * 3),
                        dst = rt.output(a.dst, a.out_height * a.out_width * 3);
  ResizeBicubicArgs d = a;
  d.src = src.get();
  d.dst = dst.get();
  resize_bicubic(d, rt.stream());
  rt.download(a.dst, dst);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
