// Layout ops of the vision path: SigLIP's patch embedding (a stride-patch convolution) and
// NVILA's 3x3 space-to-channel step of the projector. Host pointers, one Impl switch.
#pragma once
#include <cstdint>

#include "common.h"
#include "weights.h"

namespace sr3d {

// NVILA mlp_downsample_3x3_fix steps 1-2. x: (n, g*g, c) f32, a row-major g x g grid,
// zero-padded to a multiple of 3 (bottom rows / right columns) -> y: (n, G*G, 9c) f32 with
// G = ceil(g/3) and y[R*G+C][(m*3+k)*c + ch] = xpad[3R+m][3C+k][ch].
void space_to_channel3(const float* x, int64_t n, int64_t g, int64_t c, float* y, Impl impl);
// img: (n, 3, size, size) f32, size % patch == 0; w: (hidden, 3*patch*patch) [out][c][ky][kx];
// bias: (hidden) f32 or null -> out: (n, (size/patch)^2, hidden) f32, patches in row-major order.
void patch_embed(const float* img, int64_t n, int64_t size, int64_t patch, const WeightRef& w,
                 const float* bias, float* out, Impl impl);

namespace cpu {
void space_to_channel3_reference(const float* x, int64_t n, int64_t g, int64_t c, float* y);
void space_to_channel3_fast(const float* x, int64_t n, int64_t g, int64_t c, float* y);
void patch_embed_reference(const float* img, int64_t n, int64_t size, int64_t patch,
                           const WeightRef& w, const float* bias, float* out);
void patch_embed_fast(const float* img, int64_t n, int64_t size, int64_t patch,
                      const WeightRef& w, const float* bias, float* out);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void space_to_channel3_host(const float* x, int64_t n, int64_t g, int64_t c, float* y);
void patch_embed_host(const float* img, int64_t n, int64_t size, int64_t patch,
                      const WeightRef& w, const float* bias, float* out);
}  // namespace cuda
#endif

}  // namespace sr3d
