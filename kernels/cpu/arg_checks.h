// Argument checks shared by the nn ops' dispatchers (linear, attention, norms, activation,
// rope, projector): each throws kInvalidArgument naming the argument. Internal linkage: one
// copy per kernel file, like the static helpers they replaced.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "../common.h"
#include "../weights.h"

namespace sr3d {
namespace {

inline std::string num(int64_t v) { return std::to_string(v); }

inline void need_ptr(const void* p, const char* name) {
  if (!p) throw_invalid_argument("a non-null buffer", name, "nullptr");
}
inline void need_positive(int64_t v, const char* name) {
  if (v < 1) throw_invalid_argument("a positive size", name, num(v));
}
inline void need_wtype(WType t, const char* name) {
  if (t != WType::kF32 && t != WType::kF16 && t != WType::kBF16)
    throw_invalid_argument("a weight dtype (float32, float16 or bfloat16)", name,
                           "dtype code " + num(static_cast<int>(t)));
}
inline void need_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw_invalid_argument("a finite number", name, format_number(v));
}

}  // namespace
}  // namespace sr3d
