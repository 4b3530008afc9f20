// CPU LayerNorm and RMSNorm: see norms.h for the contracts.
#include "../norms.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "simd.h"
#include "vec8.h"

namespace sr3d {

namespace {

SR3D_TARGET_CLONES
void layer_norm_row(const float* x, int64_t d, const float* gamma, const float* beta, float eps,
                    float* y) {
  const int64_t d8 = d & ~int64_t{7};
  v8f acc = {};
  for (int64_t c = 0; c < d8; c += 8) acc += load8(x + c);
  float s = hsum8(acc);
  for (int64_t c = d8; c < d; ++c) s += x[c];
  const float mean = s / static_cast<float>(d);
  const v8f mv = {mean, mean, mean, mean, mean, mean, mean, mean};
  acc = v8f{};
  for (int64_t c = 0; c < d8; c += 8) {
    const v8f t = load8(x + c) - mv;
    acc += t * t;
  }
  float ss = hsum8(acc);
  for (int64_t c = d8; c < d; ++c) ss += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  const v8f rv = {rstd, rstd, rstd, rstd, rstd, rstd, rstd, rstd};
  for (int64_t c = 0; c < d8; c += 8)
    store8(y + c, (load8(x + c) - mv) * rv * load8(gamma + c) + load8(beta + c));
  for (int64_t c = d8; c < d; ++c) y[c] = (x[c] - mean) * rstd * gamma[c] + beta[c];
}

SR3D_TARGET_CLONES
void rms_norm_row(const float* x, int64_t d, const float* gamma, float eps, float* y) {
  const int64_t d8 = d & ~int64_t{7};
  v8f acc = {};
  for (int64_t c = 0; c < d8; c += 8) acc += load8(x + c) * load8(x + c);
  float ss = hsum8(acc);
  for (int64_t c = d8; c < d; ++c) ss += x[c] * x[c];
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  const v8f rv = {r, r, r, r, r, r, r, r};
  for (int64_t c = 0; c < d8; c += 8) store8(y + c, load8(gamma + c) * (load8(x + c) * rv));
  for (int64_t c = d8; c < d; ++c) y[c] = gamma[c] * (x[c] * r);
}

}  // namespace

namespace cpu {

void layer_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma,
                          const float* beta, float eps, float* y) {
  // The plain definition, its sums in double (a single float running sum over d = 10368
  // terms drifts ~7e-5 relative: the reference must be the accurate side of every check).
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * d;
    double s = 0.0;
    for (int64_t c = 0; c < d; ++c) s += r[c];
    const double mean = s / static_cast<double>(d);
    double ss = 0.0;
    for (int64_t c = 0; c < d; ++c) ss += (r[c] - mean) * (r[c] - mean);
    const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t c = 0; c < d; ++c)
      y[i * d + c] = static_cast<float>((r[c] - mean) * rstd * gamma[c] + beta[c]);
  }
}

void layer_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                     float eps, float* y) {
  parallel_for(n, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) layer_norm_row(x + i * d, d, gamma, beta, eps, y + i * d);
  });
}

void rms_norm_reference(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                        float* y) {
  for (int64_t i = 0; i < n; ++i) {  // sums in double, as layer_norm_reference
    const float* r = x + i * d;
    double ss = 0.0;
    for (int64_t c = 0; c < d; ++c) ss += static_cast<double>(r[c]) * r[c];
    const double rs = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t c = 0; c < d; ++c) y[i * d + c] = static_cast<float>(gamma[c] * (r[c] * rs));
  }
}

void rms_norm_fast(const float* x, int64_t n, int64_t d, const float* gamma, float eps,
                   float* y) {
  parallel_for(n, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) rms_norm_row(x + i * d, d, gamma, eps, y + i * d);
  });
}

}  // namespace cpu

void layer_norm(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                float eps, float* y, Impl impl) {
  need_positive(n, "n (rows)");
  need_positive(d, "d (features)");
  if (!(eps >= 0) || !std::isfinite(eps))
    throw_invalid_argument("a finite eps >= 0", "eps", format_number(eps));
  need_ptr(x, "x");
  need_ptr(gamma, "gamma");
  need_ptr(beta, "beta");
  need_ptr(y, "y");
  run_impl(impl,
           [&] { cpu::layer_norm_reference(x, n, d, gamma, beta, eps, y); },
           [&] { cpu::layer_norm_fast(x, n, d, gamma, beta, eps, y); },
           SR3D_CUDA_PATH(cuda::layer_norm_host(x, n, d, gamma, beta, eps, y)));
}

void rms_norm(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y,
              Impl impl) {
  need_positive(n, "n (rows)");
  need_positive(d, "d (features)");
  if (!(eps >= 0) || !std::isfinite(eps))
    throw_invalid_argument("a finite eps >= 0", "eps", format_number(eps));
  need_ptr(x, "x");
  need_ptr(gamma, "gamma");
  need_ptr(y, "y");
  run_impl(impl,
           [&] { cpu::rms_norm_reference(x, n, d, gamma, eps, y); },
           [&] { cpu::rms_norm_fast(x, n, d, gamma, eps, y); },
           SR3D_CUDA_PATH(cuda::rms_norm_host(x, n, d, gamma, eps, y)));
}

}  // namespace sr3d
