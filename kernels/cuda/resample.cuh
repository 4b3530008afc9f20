// Pillow's bicubic resampling on the device, shared by resize_bicubic.cu and tile_image.cu.
// The coefficient tables come from the host (bicubic_axis, the code the CPU paths use) and the
// device does only the int32 sums, which are exact: the bytes equal the CPU paths' by
// construction. A pass Pillow skips (size unchanged) runs here as the identity axis
// (weight 2^22 on one tap: clip8(2^21 + x * 2^22) = x), which gives the same bytes.
#pragma once
#include <cstdint>
#include <vector>

#include "../resize_bicubic.h"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

struct AxisView {
  const int32_t* first;
  const int32_t* count;
  const int32_t* weights;
  int taps;
  int64_t out_size;
};

// The resampling of one image (H,W,3) -> (out_h,out_w,3) with its tables on the device.
// Rows [row0, row1) of the horizontal pass are all the vertical pass reads.
class DeviceResample {
 public:
  DeviceResample(int64_t height, int64_t width, int64_t out_height, int64_t out_width, cudaStream_t s)
      : row0_(0), row1_(height) {
    const ResampleAxis h = out_width != width ? bicubic_axis(width, out_width) : identity(width);
    const ResampleAxis v = out_height != height ? bicubic_axis(height, out_height) : identity(height);
    row0_ = v.first.front();
    row1_ = 0;
    for (int64_t y = 0; y < out_height; ++y)
      row1_ = row1_ > v.first[y] + v.count[y] ? row1_ : v.first[y] + v.count[y];
    h_ = upload(h, h_first_, h_count_, h_weights_, s);
    v_ = upload(v, v_first_, v_count_, v_weights_, s);
  }
  const AxisView& h() const { return h_; }
  const AxisView& v() const { return v_; }
  int64_t row0() const { return row0_; }
  int64_t rows() const { return row1_ - row0_; }

 private:
  static ResampleAxis identity(int64_t n) {
    ResampleAxis ax;
    ax.in_size = ax.out_size = n;
    ax.taps = 1;
    ax.first.resize(n);
    for (int64_t i = 0; i < n; ++i) ax.first[i] = static_cast<int32_t>(i);
    ax.count.assign(n, 1);
    ax.weights.assign(n, 1 << kResamplePrecisionBits);
    return ax;
  }
  static AxisView upload(const ResampleAxis& ax, DeviceBuffer<int32_t>& first, DeviceBuffer<int32_t>& count,
                         DeviceBuffer<int32_t>& weights, cudaStream_t s) {
    first.allocate(ax.first.size(), s);
    count.allocate(ax.count.size(), s);
    weights.allocate(ax.weights.size(), s);
    // Pageable sources: each call returns once its bytes are staged, so the host vectors
    // may go out of scope right after.
    SR3D_CUDA_CHECK(cudaMemcpyAsync(first.get(), ax.first.data(), first.bytes(), cudaMemcpyHostToDevice, s));
    SR3D_CUDA_CHECK(cudaMemcpyAsync(count.get(), ax.count.data(), count.bytes(), cudaMemcpyHostToDevice, s));
    SR3D_CUDA_CHECK(cudaMemcpyAsync(weights.get(), ax.weights.data(), weights.bytes(), cudaMemcpyHostToDevice, s));
    return AxisView{first.get(), count.get(), weights.get(), ax.taps, ax.out_size};
  }

  int64_t row0_, row1_;
  DeviceBuffer<int32_t> h_first_, h_count_, h_weights_, v_first_, v_count_, v_weights_;
  AxisView h_{}, v_{};
};

__device__ __forceinline__ uint8_t device_clip8(int32_t sum) {
  const int32_t v = sum >> kResamplePrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over input rows [row0, row0 + rows): one thread per output pixel (3 sums).
// Neighbouring threads read overlapping source pixels, so DRAM sees each row about once.
static __global__ void resample_h_kernel(const uint8_t* __restrict__ src, int64_t width, int64_t row0,
                                  int64_t rows, AxisView h, uint8_t* __restrict__ out) {
  const int64_t total = rows * h.out_size;
  const int32_t half = 1 << (kResamplePrecisionBits - 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / h.out_size, x = i - r * h.out_size;
    const uint8_t* p = src + ((row0 + r) * width + h.first[x]) * 3;
    const int32_t* k = h.weights + x * h.taps;
    int32_t s0 = half, s1 = half, s2 = half;
    for (int t = 0, n = h.count[x]; t < n; ++t) {
      s0 += p[3 * t] * k[t];
      s1 += p[3 * t + 1] * k[t];
      s2 += p[3 * t + 2] * k[t];
    }
    uint8_t* o = out + i * 3;
    o[0] = device_clip8(s0);
    o[1] = device_clip8(s1);
    o[2] = device_clip8(s2);
  }
}

// Vertical pass: one thread per output pixel (3 sums) over the horizontal rows (row r of the
// image at in + (r - row0) * row_bytes); `store(y, x, c, value)` writes the result.
template <typename Store>
__global__ void resample_v_kernel(const uint8_t* __restrict__ in, int64_t width, int64_t row0,
                                  AxisView v, Store store) {
  const int64_t total = v.out_size * width;
  const int32_t half = 1 << (kResamplePrecisionBits - 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t y = i / width, x = i - y * width;
    const uint8_t* p = in + ((v.first[y] - row0) * width + x) * 3;
    const int32_t* k = v.weights + y * v.taps;
    int32_t s0 = half, s1 = half, s2 = half;
    for (int t = 0, n = v.count[y]; t < n; ++t) {
      const uint8_t* q = p + t * width * 3;
      s0 += q[0] * k[t];
      s1 += q[1] * k[t];
      s2 += q[2] * k[t];
    }
    store(y, x, device_clip8(s0), device_clip8(s1), device_clip8(s2));
  }
}

// Runs both passes of `r` on `src` (device), handing every output pixel to `store`.
template <typename Store>
void resample_launch(const uint8_t* src, int64_t width, const DeviceResample& r, Store store,
                     cudaStream_t s) {
  DeviceBuffer<uint8_t> mid(static_cast<size_t>(r.rows() * r.h().out_size * 3), s);
  SR3D_LAUNCH(resample_h_kernel, grid_for(r.rows() * r.h().out_size), kBlock, 0, s, src, width,
              r.row0(), r.rows(), r.h(), mid.get());
  SR3D_LAUNCH(resample_v_kernel<Store>, grid_for(r.v().out_size * r.h().out_size), kBlock, 0, s,
              mid.get(), r.h().out_size, r.row0(), r.v(), store);
}

}  // namespace cuda
}  // namespace sr3d
