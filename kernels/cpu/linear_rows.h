// How the CPU Linear kernels (linear.cc, linear_q.cc, linear_ab16.cc, linear_a8.cc) split the
// output rows of the `count` linears that share one input (q/k/v, gate/up) into one parallel
// region: fewer pool wake-ups per decode step.
#pragma once
#include <algorithm>
#include <cstdint>

#include "../common.h"
#include "../weights.h"

namespace sr3d {
namespace cpu {

// Chunks over `units` (rows or row strips): enough that a chunk streams >= ~32 KiB of weights
// or does as many multiply-adds (the pool's workers spin between regions, so handing a chunk
// over costs ~1 µs, not a wake-up), one per thread for decode-sized n (uniform work), up to 4
// per thread for GEMMs (load balance).
inline int linear_chunk_count(int64_t n, int64_t units, int64_t weight_bytes, int64_t macs) {
  const int64_t work = std::max(weight_bytes, macs);
  const int64_t cap = n <= 4 ? cpu_threads() : 4LL * cpu_threads();
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({work >> 15, cap, units})));
}

// f(i, lo, hi) for each weight i whose rows [lo, hi) fall in [b, e) of the concatenated rows
// of ws[0..count).
template <class F>
inline void for_rows_in(const WeightRef* ws, int count, int64_t b, int64_t e, F&& f) {
  int64_t base = 0;
  for (int i = 0; i < count; ++i) {
    const int64_t lo = std::max(b, base) - base, hi = std::min(e, base + ws[i].rows) - base;
    base += ws[i].rows;
    if (lo < hi) f(i, lo, hi);
  }
}

}  // namespace cpu
}  // namespace sr3d
