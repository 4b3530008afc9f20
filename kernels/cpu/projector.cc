// CPU layout ops of the vision path: SigLIP's patch embedding and the projector's 3x3
// space-to-channel step (see projector.h).
#include "../projector.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../linear.h"
#include "arg_checks.h"

namespace sr3d {

namespace {

// im2col of one patch row: cols[p][c*pp*pp + ky*pp + kx] for the patches of grid row py.
void im2col_row(const float* img, int64_t size, int64_t patch, int64_t py, float* cols) {
  const int64_t P = size / patch, kk = 3 * patch * patch;
  for (int64_t px = 0; px < P; ++px)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t ky = 0; ky < patch; ++ky)
        std::memcpy(cols + px * kk + (c * patch + ky) * patch,
                    img + (c * size + py * patch + ky) * size + px * patch, patch * sizeof(float));
}

}  // namespace

namespace cpu {

// ---- space_to_channel3 -------------------------------------------------------------------

void space_to_channel3_reference(const float* x, int64_t n, int64_t g, int64_t c, float* y) {
  const int64_t G = (g + 2) / 3;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t R = 0; R < G; ++R)
      for (int64_t C = 0; C < G; ++C)
        for (int64_t m = 0; m < 3; ++m)
          for (int64_t kk = 0; kk < 3; ++kk)
            for (int64_t ch = 0; ch < c; ++ch) {
              const int64_t r = 3 * R + m, col = 3 * C + kk;
              y[((t * G * G) + R * G + C) * 9 * c + (m * 3 + kk) * c + ch] =
                  (r < g && col < g) ? x[(t * g * g + r * g + col) * c + ch] : 0.f;
            }
}

void space_to_channel3_fast(const float* x, int64_t n, int64_t g, int64_t c, float* y) {
  const int64_t G = (g + 2) / 3;
  parallel_for(n * G * G, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t tok = b; tok < e; ++tok) {
      const int64_t t = tok / (G * G), R = (tok / G) % G, C = tok % G;
      float* dst = y + tok * 9 * c;
      for (int64_t m = 0; m < 3; ++m)
        for (int64_t kk = 0; kk < 3; ++kk) {
          const int64_t r = 3 * R + m, col = 3 * C + kk;
          float* o = dst + (m * 3 + kk) * c;
          if (r < g && col < g) std::memcpy(o, x + (t * g * g + r * g + col) * c, c * sizeof(float));
          else std::memset(o, 0, c * sizeof(float));
        }
    }
  });
}

// ---- patch_embed -------------------------------------------------------------------------

void patch_embed_reference(const float* img, int64_t n, int64_t size, int64_t patch,
                           const WeightRef& w, const float* bias, float* out) {
  const int64_t P = size / patch, kk = 3 * patch * patch;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t py = 0; py < P; ++py)
      for (int64_t px = 0; px < P; ++px)
        for (int64_t o = 0; o < w.rows; ++o) {
          float s = 0.f;
          for (int64_t c = 0; c < 3; ++c)
            for (int64_t ky = 0; ky < patch; ++ky)
              for (int64_t kx = 0; kx < patch; ++kx)
                s += img[((t * 3 + c) * size + py * patch + ky) * size + px * patch + kx] *
                     load_weight(w.data, w.type, o * kk + (c * patch + ky) * patch + kx);
          out[((t * P + py) * P + px) * w.rows + o] = bias ? s + bias[o] : s;
        }
}

void patch_embed_fast(const float* img, int64_t n, int64_t size, int64_t patch,
                      const WeightRef& w, const float* bias, float* out) {
  const int64_t P = size / patch, kk = 3 * patch * patch;
  std::vector<float> cols(static_cast<size_t>(n * P * P * kk));
  parallel_for(n * P, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t tr = b; tr < e; ++tr)
      im2col_row(img + (tr / P) * 3 * size * size, size, patch, tr % P, cols.data() + tr * P * kk);
  });
  linear_fast(cols.data(), n * P * P, w, bias, out);
}

}  // namespace cpu

void space_to_channel3(const float* x, int64_t n, int64_t g, int64_t c, float* y, Impl impl) {
  need_positive(n, "n (tiles)");
  need_positive(g, "g (grid side)");
  need_positive(c, "c (channels)");
  need_ptr(x, "x");
  need_ptr(y, "y");
  run_impl(impl,
           [&] { cpu::space_to_channel3_reference(x, n, g, c, y); },
           [&] { cpu::space_to_channel3_fast(x, n, g, c, y); },
           SR3D_CUDA_PATH(cuda::space_to_channel3_host(x, n, g, c, y)));
}

void patch_embed(const float* img, int64_t n, int64_t size, int64_t patch, const WeightRef& w,
                 const float* bias, float* out, Impl impl) {
  need_positive(n, "n (tiles)");
  need_positive(patch, "patch");
  need_positive(size, "size");
  if (size % patch != 0)
    throw_invalid_argument("an image size divisible by the patch size " + num(patch), "size",
                           num(size));
  need_positive(w.rows, "weight rows (hidden)");
  if (w.cols != 3 * patch * patch)
    throw_invalid_argument("weight cols 3*patch*patch = " + num(3 * patch * patch),
                           "patch_embed weight", num(w.cols) + " cols");
  need_wtype(w.type, "weight");
  need_ptr(img, "img");
  need_ptr(w.data, "weight");
  need_ptr(out, "out");
  run_impl(impl,
           [&] { cpu::patch_embed_reference(img, n, size, patch, w, bias, out); },
           [&] { cpu::patch_embed_fast(img, n, size, patch, w, bias, out); },
           SR3D_CUDA_PATH(cuda::patch_embed_host(img, n, size, patch, w, bias, out)));
}

}  // namespace sr3d
