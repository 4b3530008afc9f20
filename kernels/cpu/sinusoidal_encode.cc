#include "../sinusoidal_encode.h"

#include <cmath>
#include <limits>
#include <string>

namespace sr3d {

void sinusoidal_encode_check(const SinusoidalEncodeArgs& a) {
  if (a.num_freqs < 0 || a.num_freqs > 30)
    throw_invalid_argument("an integer numFreqs in [0, 30]", "numFreqs", std::to_string(a.num_freqs));
  if (a.n < 0) throw_invalid_argument("a non-negative point count", "points", std::to_string(a.n));
  if (sinusoidal_width(a.num_freqs, a.include_input) == 0)
    throw_invalid_argument("at least one feature (numFreqs > 0 or includeInput)", "numFreqs", "0 with includeInput false");
  if (a.n > 0 && (!a.points || !a.features)) throw_internal("sinusoidal_encode: null buffer");
}

void sinusoidal_encode(const SinusoidalEncodeArgs& a, Impl impl) {
  sinusoidal_encode_check(a);
  return run_impl(
      impl, [&] { return cpu::sinusoidal_encode_reference(a); },
      [&] { return cpu::sinusoidal_encode_fast(a); },
      SR3D_CUDA_PATH(cuda::sinusoidal_encode_host(a)));
}

namespace cpu {

// The formula as written: sin(2^k * pi * p) in float64.
void sinusoidal_encode_reference(const SinusoidalEncodeArgs& a) {
  const int64_t D = sinusoidal_width(a.num_freqs, a.include_input) / 3;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < a.n; ++i) {
    const float* p = a.points + 3 * i;
    float* out = a.features + 3 * D * i;
    bool ok = std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
    for (int ax = 0; ax < 3; ++ax) {
      float* o = out + ax * D;
      if (a.include_input) *o++ = ok ? p[ax] : nan;
      for (int k = 0; k < a.num_freqs; ++k) {
        double arg = std::ldexp(1.0, k) * M_PI * static_cast<double>(p[ax]);
        *o++ = ok ? static_cast<float>(std::sin(arg)) : nan;
        *o++ = ok ? static_cast<float>(std::cos(arg)) : nan;
      }
    }
  }
}

// Every 8th frequency exactly (y = 2^k p exact, r = y mod 2 exact, sincos(pi r) in float64);
// the 7 between by the double-angle step sin 2t = 2 s c, cos 2t = (c - s)(c + s) in float64,
// whose error grows ~2x per step: <= 2^7 float64 ulps, far below the float32 output's ulp.
// One libm sincos per 8 features pairs instead of 8 (the op was libm-bound).
void sinusoidal_encode_fast(const SinusoidalEncodeArgs& a) {
  const int64_t D = sinusoidal_width(a.num_freqs, a.include_input) / 3;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  parallel_for(a.n, 0, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* p = a.points + 3 * i;
      float* out = a.features + 3 * D * i;
      bool ok = std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
      if (!ok) {
        for (int64_t j = 0; j < 3 * D; ++j) out[j] = nan;
        continue;
      }
      for (int ax = 0; ax < 3; ++ax) {
        float* o = out + ax * D;
        if (a.include_input) *o++ = p[ax];
        double y = p[ax], s = 0, c = 1;
        for (int k = 0; k < a.num_freqs; ++k, y *= 2.0) {
          if (k % 8 == 0) {
            double r = y - 2.0 * std::nearbyint(0.5 * y);
            sincos(M_PI * r, &s, &c);
          } else {
            double s2 = 2.0 * s * c, c2 = (c - s) * (c + s);
            s = s2;
            c = c2;
          }
          *o++ = static_cast<float>(s);
          *o++ = static_cast<float>(c);
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace sr3d
