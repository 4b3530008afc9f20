// box3d_masks on CUDA: one launch for all frames (grid.y = frame), one thread per pixel,
// the header's predicates (compiled with --fmad=false, so they round exactly like the CPU);
// per-frame counts by a block reduction and one 64-bit atomic per block. kInside moves
// 13 B/px (points in, mask out); kProject 1 B/px (the hulls are built on the host: ~1 us
// per frame).
#ifdef SR3D_WITH_CUDA
#include "../box3d_masks.h"

#include <cfloat>
#include <vector>

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

constexpr int kBoxBlock = 256;

__device__ void add_counts(unsigned long long in, unsigned long long ok, int64_t* inside, int64_t* valid) {
  __shared__ unsigned long long s_in[kBoxBlock / 32], s_ok[kBoxBlock / 32];
  for (int o = 16; o > 0; o >>= 1) {
    in += __shfl_down_sync(0xffffffffu, in, o);
    ok += __shfl_down_sync(0xffffffffu, ok, o);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    s_in[warp] = in;
    s_ok[warp] = ok;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long bi = 0, bo = 0;
    for (int w = 0; w < kBoxBlock / 32; ++w) {
      bi += s_in[w];
      bo += s_ok[w];
    }
    if (bi) atomicAdd(reinterpret_cast<unsigned long long*>(inside + blockIdx.y), bi);
    if (bo) atomicAdd(reinterpret_cast<unsigned long long*>(valid + blockIdx.y), bo);
  }
}

__global__ void box3d_inside_kernel(const float* __restrict__ points, int64_t pixels, Box3dF box,
                                    uint8_t* __restrict__ masks, int64_t* inside, int64_t* valid) {
  const int64_t base = blockIdx.y * pixels;
  unsigned long long in = 0, ok = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pixels;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float* p = points + 3 * (base + i);
    const float x = p[0], y = p[1], z = p[2];
    const bool m = box3d_inside(box, x, y, z);
    masks[base + i] = m;
    in += m;
    ok += fabsf(x) <= FLT_MAX && fabsf(y) <= FLT_MAX && fabsf(z) <= FLT_MAX;
  }
  add_counts(in, ok, inside, valid);
}

__global__ void box3d_project_kernel(const HullEdge* __restrict__ edges, const int* __restrict__ counts,
                                     int64_t height, int64_t width, uint8_t* __restrict__ masks,
                                     int64_t* inside, int64_t* valid) {
  const int64_t f = blockIdx.y, pixels = height * width;
  const HullEdge* e = edges + f * kMaxHullEdges;
  const int n = counts[f];
  unsigned long long in = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pixels;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = static_cast<double>(i / width), u = static_cast<double>(i % width);
    bool m = n > 0;
    for (int k = 0; k < n && m; ++k) m = hull_edge_inside(e[k], u, v);
    masks[f * pixels + i] = m;
    in += m;
  }
  add_counts(in, 0, inside, valid);
}

}  // namespace

void box3d_masks(const Box3dMasksArgs& a, void* stream_ptr) {
  box3d_masks_check(a);
  cudaStream_t s = as_stream(stream_ptr);
  const int64_t F = a.frames, pixels = a.height * a.width;
  if (F == 0) return;
  SR3D_CUDA_CHECK(cudaMemsetAsync(a.inside, 0, F * sizeof(int64_t), s));
  SR3D_CUDA_CHECK(cudaMemsetAsync(a.valid, 0, F * sizeof(int64_t), s));
  if (pixels == 0) return;
  // ~4 blocks per SM-worth of pixels per frame, capped: the grid-stride loop does the rest.
  const unsigned bx = grid_for(pixels, kBoxBlock) < 1024 ? grid_for(pixels, kBoxBlock) : 1024;
  const dim3 grid(bx, static_cast<unsigned>(F));
  if (a.mode == Box3dMaskMode::kInside) {
    SR3D_LAUNCH(box3d_inside_kernel, grid, kBoxBlock, 0, s, a.points, pixels, box3d_float(a.box),
                a.masks, a.inside, a.valid);
    return;
  }
  std::vector<HullEdge> edges(static_cast<size_t>(F * kMaxHullEdges));
  std::vector<int> counts(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) counts[f] = box3d_frame_hull(a, f, &edges[f * kMaxHullEdges]);
  DeviceBuffer<HullEdge> d_edges(edges.size(), s);
  DeviceBuffer<int> d_counts(counts.size(), s);
  SR3D_CUDA_CHECK(cudaMemcpyAsync(d_edges.get(), edges.data(), d_edges.bytes(), cudaMemcpyHostToDevice, s));
  SR3D_CUDA_CHECK(cudaMemcpyAsync(d_counts.get(), counts.data(), d_counts.bytes(), cudaMemcpyHostToDevice, s));
  SR3D_LAUNCH(box3d_project_kernel, grid, kBoxBlock, 0, s, d_edges.get(), d_counts.get(), a.height,
              a.width, a.masks, a.inside, a.valid);
  // valid = H*W in this mode: a per-frame constant, set after the kernel's (zero) adds.
  std::vector<int64_t> all(static_cast<size_t>(F), pixels);
  SR3D_CUDA_CHECK(cudaMemcpyAsync(a.valid, all.data(), F * sizeof(int64_t), cudaMemcpyHostToDevice, s));
  SR3D_CUDA_CHECK(cudaStreamSynchronize(s));  // the host vectors go out of scope
}

void box3d_masks_host(const Box3dMasksArgs& a) {
  box3d_masks_check(a);
  const int64_t F = a.frames, n = a.frames * a.height * a.width;
  if (F == 0) return;
  RoundTrip rt;
  DeviceBuffer<float> points = rt.upload(a.points, a.mode == Box3dMaskMode::kInside ? 3 * n : 0);
  DeviceBuffer<uint8_t> masks = rt.output(a.masks, n);
  DeviceBuffer<int64_t> inside = rt.output(a.inside, F), valid = rt.output(a.valid, F);
  Box3dMasksArgs d = a;
  d.points = points.get();
  d.masks = masks.get();
  d.inside = inside.get();
  d.valid = valid.get();
  box3d_masks(d, rt.stream());
  to_host(a.masks, masks, rt.stream());
  to_host(a.inside, inside, rt.stream());
  rt.download(a.valid, valid);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
