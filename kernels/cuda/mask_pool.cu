// mask_pool on CUDA, one pass over the features for up to 32 regions (performance.md §2
// fusion plan step 5: pooling reads the tiles in place):
//   1. weights: one thread per (region, token) from the mask (area count or SpatialRGPT's
//      bilinear sample); per-block sums in a fixed tree, then per region in block order
//      (deterministic; exact for P = 14, where every value is a multiple of 1/4).
//   2. host: the empty-region errors and the float32 denominators (one sync).
//   3. finalize: spatialrgpt w = d / denom (IEEE division, as on the CPU); active-token flags.
//   4. sweep: blocks of 128 channels x 512 tokens; each thread keeps its regions' float64
//      sums in shared memory, reads each feature float of an active token once (coalesced),
//      and writes one partial per (chunk, region, channel).
//   5. final: the chunks' partials summed in chunk order, rounded once.
// Bytes: features of the active tokens + the masks (area; spatialrgpt reads 4 px per token)
// + ~16 B x M x C x T/512 of partials (4.7 MB for 32x1024 tokens, 8 regions, C = 1152).
#ifdef SR3D_WITH_CUDA
#include "../mask_pool.h"

#include <vector>

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

constexpr int kWeightBlock = 256;
constexpr int kWeightTokens = 1024;     // tokens per weights block (4 per thread)
constexpr int kSweepThreads = 128;      // channels per sweep block
constexpr int kSweepTokens = 512;       // tokens per sweep block (the fixed chunk)
constexpr int kRegionsPerPass = 32;     // shared float64 sums: 32 x 128 x 8 B = 32 KiB

__device__ void token_coords(const TokenGrid& g, int64_t t, int64_t* f, int64_t* y, int64_t* x) {
  const int64_t hw = g.height * g.width;
  *f = t / hw;
  const int64_t yx = t - *f * hw;
  *y = yx / g.width;
  *x = yx - *y * g.width;
}

__global__ void mask_weights_kernel(const uint8_t* __restrict__ masks, TokenGrid g, int64_t patch,
                                    int64_t regions, int spatialrgpt,
                                    const BilinearTap* __restrict__ taps_y,
                                    const BilinearTap* __restrict__ taps_x,
                                    double* __restrict__ weight, double* __restrict__ block_sums) {
  __shared__ double sums[kWeightBlock];
  const int64_t m = blockIdx.y, T = g.tokens();
  const int64_t Hm = g.height * patch, Wm = g.width * patch;
  const uint8_t* region = masks + m * g.frames * Hm * Wm;
  double s = 0;
  for (int k = 0; k < kWeightTokens / kWeightBlock; ++k) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kWeightTokens + k * kWeightBlock + threadIdx.x;
    if (t >= T) break;
    int64_t f, y, x;
    token_coords(g, t, &f, &y, &x);
    const uint8_t* mask = region + f * Hm * Wm;
    const double w = spatialrgpt ? static_cast<double>(spatialrgpt_sample(mask, Wm, taps_y[y], taps_x[x]))
                                 : static_cast<double>(mask_block_count(mask, Wm, patch, y, x));
    weight[t * regions + m] = w;
    s = __dadd_rn(s, w);
  }
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int step = kWeightBlock / 2; step > 0; step >>= 1) {
    if (threadIdx.x < step) sums[threadIdx.x] = __dadd_rn(sums[threadIdx.x], sums[threadIdx.x + step]);
    __syncthreads();
  }
  if (threadIdx.x == 0) block_sums[m * gridDim.x + blockIdx.x] = sums[0];
}

__global__ void region_totals_kernel(const double* __restrict__ block_sums, int64_t blocks,
                                     int64_t regions, double* __restrict__ totals) {
  const int64_t m = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (m >= regions) return;
  double s = 0;
  for (int64_t b = 0; b < blocks; ++b) s = __dadd_rn(s, block_sums[m * blocks + b]);
  totals[m] = s;
}

__global__ void any_nonzero_kernel(const uint8_t* __restrict__ p, int64_t n, int* __restrict__ flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (p[i]) {
      *flag = 1;
      return;
    }
}

__global__ void finalize_weights_kernel(double* __restrict__ weight, int64_t tokens, int64_t regions,
                                        const float* __restrict__ denom, uint8_t* __restrict__ active) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < tokens;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bool any = false;
    for (int64_t m = 0; m < regions; ++m) {
      double& w = weight[t * regions + m];
      if (denom) w = static_cast<double>(__fdiv_rn(static_cast<float>(w), denom[m]));
      any = any || w != 0;
    }
    active[t] = any;
  }
}

__global__ void mask_pool_sweep_kernel(const float* __restrict__ features, TokenGrid g,
                                       const double* __restrict__ weight,
                                       const uint8_t* __restrict__ active, int64_t regions,
                                       double* __restrict__ partial) {
  extern __shared__ double acc[];  // [region in pass][thread]
  const int64_t C = g.channels, T = g.tokens();
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kSweepThreads + threadIdx.x;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kSweepTokens;
  const int64_t t1 = t0 + kSweepTokens < T ? t0 + kSweepTokens : T;
  const int64_t m0 = static_cast<int64_t>(blockIdx.z) * kRegionsPerPass;
  const int64_t mn = regions - m0 < kRegionsPerPass ? regions - m0 : kRegionsPerPass;
  if (c >= C) return;  // no block-wide synchronization below
  for (int64_t m = 0; m < mn; ++m) acc[m * kSweepThreads + threadIdx.x] = 0.0;
  for (int64_t t = t0; t < t1; ++t) {
    if (!active[t]) continue;  // uniform across the block
    int64_t f, y, x;
    token_coords(g, t, &f, &y, &x);
    const double v = static_cast<double>(features[g.offset(f, y, x) + c]);
    const double* w = weight + t * regions + m0;
    for (int64_t m = 0; m < mn; ++m) {
      const double wm = w[m];
      if (wm != 0) {
        double& a = acc[m * kSweepThreads + threadIdx.x];
        a = __dadd_rn(a, __dmul_rn(wm, v));
      }
    }
  }
  for (int64_t m = 0; m < mn; ++m)
    partial[(static_cast<int64_t>(blockIdx.y) * regions + m0 + m) * C + c] = acc[m * kSweepThreads + threadIdx.x];
}

__global__ void mask_pool_final_kernel(const double* __restrict__ partial, int64_t chunks,
                                       int64_t regions, int64_t channels,
                                       const double* __restrict__ totals, int divide,
                                       float* __restrict__ out) {
  const int64_t n = regions * channels;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int64_t k = 0; k < chunks; ++k) s = __dadd_rn(s, partial[k * n + i]);
    out[i] = __double2float_rn(divide ? __ddiv_rn(s, totals[i / channels]) : s);
  }
}

}  // namespace

void mask_pool(const MaskPoolArgs& a, void* stream_ptr) {
  mask_pool_check(a);
  cudaStream_t s = as_stream(stream_ptr);
  const TokenGrid g = a.grid;
  const int64_t M = a.regions, T = g.tokens(), C = g.channels;
  const bool srgpt = a.mode == MaskPoolMode::kSpatialRgpt;

  DeviceBuffer<BilinearTap> taps_y, taps_x;
  if (srgpt) {
    const std::vector<BilinearTap> ty = spatialrgpt_taps(g.height, a.patch), tx = spatialrgpt_taps(g.width, a.patch);
    taps_y.allocate(ty.size(), s);
    taps_x.allocate(tx.size(), s);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(taps_y.get(), ty.data(), taps_y.bytes(), cudaMemcpyHostToDevice, s));
    SR3D_CUDA_CHECK(cudaMemcpyAsync(taps_x.get(), tx.data(), taps_x.bytes(), cudaMemcpyHostToDevice, s));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(s));  // the host vectors go out of scope
  }

  const int64_t wblocks = (T + kWeightTokens - 1) / kWeightTokens;
  DeviceBuffer<double> weight(T * M, s), block_sums(M * wblocks, s), totals(M, s);
  SR3D_LAUNCH(mask_weights_kernel, dim3(static_cast<unsigned>(wblocks), static_cast<unsigned>(M)),
              kWeightBlock, 0, s, a.masks, g, a.patch, M, srgpt ? 1 : 0, taps_y.get(),
              taps_x.get(), weight.get(), block_sums.get());
  SR3D_LAUNCH(region_totals_kernel, grid_for(M), kBlock, 0, s, block_sums.get(), wblocks, M, totals.get());

  std::vector<double> total(static_cast<size_t>(M));
  SR3D_CUDA_CHECK(cudaMemcpyAsync(total.data(), totals.get(), totals.bytes(), cudaMemcpyDeviceToHost, s));
  SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<float> denom(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    if (total[m] == 0) {
      bool has_pixel = false;
      if (srgpt) {  // covers no block centre: the zero vector, unless the mask is empty
        const int64_t n = g.frames * g.height * a.patch * g.width * a.patch;
        DeviceBuffer<int> flag(1, s);
        SR3D_CUDA_CHECK(cudaMemsetAsync(flag.get(), 0, sizeof(int), s));
        SR3D_LAUNCH(any_nonzero_kernel, grid_for(n), kBlock, 0, s, a.masks + m * n, n, flag.get());
        int h = 0;
        SR3D_CUDA_CHECK(cudaMemcpyAsync(&h, flag.get(), sizeof(int), cudaMemcpyDeviceToHost, s));
        SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
        has_pixel = h != 0;
      }
      if (!has_pixel) throw_empty_region(m);
    }
    denom[m] = spatialrgpt_denominator(total[m]);
  }

  DeviceBuffer<float> denoms;
  if (srgpt) {
    denoms.allocate(static_cast<size_t>(M), s);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(denoms.get(), denom.data(), denoms.bytes(), cudaMemcpyHostToDevice, s));
  }
  DeviceBuffer<uint8_t> active(T, s);
  SR3D_LAUNCH(finalize_weights_kernel, grid_for(T), kBlock, 0, s, weight.get(), T, M, denoms.get(),
              active.get());

  const int64_t chunks = (T + kSweepTokens - 1) / kSweepTokens;
  const int64_t passes = (M + kRegionsPerPass - 1) / kRegionsPerPass;
  const int64_t cblocks = (C + kSweepThreads - 1) / kSweepThreads;
  DeviceBuffer<double> partial(chunks * M * C, s);
  const size_t shared = sizeof(double) * kSweepThreads * static_cast<size_t>(M < kRegionsPerPass ? M : kRegionsPerPass);
  SR3D_LAUNCH(mask_pool_sweep_kernel,
              dim3(static_cast<unsigned>(cblocks), static_cast<unsigned>(chunks), static_cast<unsigned>(passes)),
              kSweepThreads, shared, s, a.features, g, weight.get(), active.get(), M, partial.get());
  SR3D_LAUNCH(mask_pool_final_kernel, grid_for(M * C), kBlock, 0, s, partial.get(), chunks, M, C,
              totals.get(), srgpt ? 0 : 1, a.out);
  if (srgpt) SR3D_CUDA_CHECK(cudaStreamSynchronize(s));  // `denom` (host) goes out of scope
}

void mask_pool_host(const MaskPoolArgs& a) {
  mask_pool_check(a);
  RoundTrip rt;
  const TokenGrid& g = a.grid;
  const int64_t mask_bytes = a.regions * g.frames * g.height * a.patch * g.width * a.patch;
  DeviceBuffer<float> features = rt.upload(a.features, g.feature_elements()),
                      out = rt.output(a.out, a.regions * g.channels);
  DeviceBuffer<uint8_t> masks = rt.upload(a.masks, mask_bytes);
  MaskPoolArgs d = a;
  d.features = features.get();
  d.masks = masks.get();
  d.out = out.get();
  mask_pool(d, rt.stream());
  rt.download(a.out, out);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
