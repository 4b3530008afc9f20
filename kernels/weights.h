// Weight formats of the nn ops: a borrowed 2-D weight in its checkpoint dtype (f32 / f16 /
// bf16, or int4 / int8 quantized for Linear only), used in place, and the exact 16-bit -> float
// conversions shared by CPU and CUDA code.
//
// Conventions of every nn op (linear, attention, norms, activation, rope, projector):
// activations are float32, row-major, contiguous; every accumulation is float32. A Linear
// weight is torch's nn.Linear layout [out][in].
#pragma once
#include <cstdint>
#include <cstring>

#include "common.h"

namespace sr3d {

enum class WType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2, kQ4 = 3, kQ8 = 4 };
const char* wtype_name(WType t);
// Bytes per element of the dense types (f32 / f16 / bf16); quantized weights are sized by
// quant_row_bytes.
inline int64_t wtype_size(WType t) { return t == WType::kF32 ? 4 : 2; }
inline bool wtype_quantized(WType t) { return t == WType::kQ4 || t == WType::kQ8; }

// bf16 / f16 bits -> float (exact), shared by CPU and CUDA code.
SR3D_HOST_DEVICE inline float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
SR3D_HOST_DEVICE inline float f16_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) { man <<= 1; --exp; }
      u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}
// float -> bf16 bits, round to nearest even (NaN stays NaN), as torch's .to(bfloat16).
SR3D_HOST_DEVICE inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
SR3D_HOST_DEVICE inline float load_weight(const void* data, WType t, int64_t i) {
  switch (t) {
    case WType::kF32: return static_cast<const float*>(data)[i];
    case WType::kF16: return f16_to_float(static_cast<const uint16_t*>(data)[i]);
    default: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
  }
}

// A borrowed 2-D weight: rows x cols, row-major (for a Linear: rows = out, cols = in).
// Quantized (kQ4 / kQ8; Linear only), sr3d's one layout that lib/quant.ts repacks AWQ and GPTQ
// into: data = q, uint8 [rows][cols * bits / 8] (int4: input 2j in the low nibble of byte j,
// 2j+1 in the high nibble), scales f32 [rows][cols / group], zeros u8 [rows][cols / group],
// perm int32 [cols] or null (act-order: stored column j is input perm[j]). Dequantized,
// exactly in float32: W[r][perm[j]] = scales[r][j / group] * (q[r][j] - zeros[r][j / group]).
struct WeightRef {
  const void* data = nullptr;
  WType type = WType::kF32;
  int64_t rows = 0, cols = 0;
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  int64_t group = 0;
  const int32_t* perm = nullptr;
};
// Bytes of one stored row of a quantized weight (cols * bits / 8).
inline int64_t quant_row_bytes(const WeightRef& w) {
  return w.type == WType::kQ4 ? w.cols / 2 : w.cols;
}

}  // namespace sr3d
