#include "../resize_bicubic.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "simd.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace sr3d {

namespace {

// Pillow's bicubic_filter (a = -0.5), same operation order.
double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

}  // namespace

void resample_axis_check(int64_t in_size, int64_t out_size, const char* name) {
  // Pillow keeps sizes in int and its box in float (exact up to 2^24). Within that, the
  // coefficient table (out * taps, taps <= 4 in/out + 3) stays far below Pillow's INT_MAX
  // bytes, and the int32 sums below 255 * 1.2 * 2^22 < 2^31.
  if (in_size < 1 || in_size > (int64_t(1) << 24))
    throw_invalid_argument("a size in [1, 2^24]", name, std::to_string(in_size));
  if (out_size < 1 || out_size > (int64_t(1) << 24))
    throw_invalid_argument("an output size in [1, 2^24]", name, std::to_string(out_size));
}

ResampleAxis bicubic_axis(int64_t in_size, int64_t out_size) {
  ResampleAxis ax;
  ax.in_size = in_size;
  ax.out_size = out_size;
  // Pillow: scale = (double)(in1 - in0) / outSize with a float box (in0 = 0, in1 = in_size:
  // exact), the kernel stretched by the downscale factor.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  ax.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  ax.first.resize(out_size);
  ax.count.resize(out_size);
  ax.weights.assign(out_size * ax.taps, 0);
  std::vector<double> k(ax.taps);
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // (int) truncates toward zero, as in Pillow ("Round the value").
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = static_cast<int>(in_size);
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((static_cast<double>(x + xmin) - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    // normalize_coeffs_8bpc: round half away from zero into 22 fraction bits.
    int32_t* kk = ax.weights.data() + xx * ax.taps;
    for (int x = 0; x < xmax; ++x)
      kk[x] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kResamplePrecisionBits))
                       : static_cast<int32_t>(0.5 + k[x] * (1 << kResamplePrecisionBits));
    ax.first[xx] = xmin;
    ax.count[xx] = xmax;
  }
  return ax;
}

void resize_bicubic_check(const ResizeBicubicArgs& a) {
  resample_axis_check(a.width, a.out_width, "width");
  resample_axis_check(a.height, a.out_height, "height");
  if (!a.src || !a.dst) throw_internal("resize_bicubic: null buffer");
}

void resize_bicubic(const ResizeBicubicArgs& a, Impl impl) {
  resize_bicubic_check(a);
  return run_impl(
      impl, [&] { return cpu::resize_bicubic_reference(a); },
      [&] { return cpu::resize_bicubic_fast(a); },
      SR3D_CUDA_PATH(cuda::resize_bicubic_host(a)));
}

namespace cpu {

// The obvious transcription of Pillow's ImagingResampleInner for RGB: the whole horizontal
// pass into a temporary image, then the vertical pass.
void resize_bicubic_reference(const ResizeBicubicArgs& a) {
  const int64_t W = a.width, H = a.height, OW = a.out_width, OH = a.out_height;
  const int32_t half = 1 << (kResamplePrecisionBits - 1);
  std::vector<uint8_t> tmp;
  const uint8_t* cur = a.src;
  int64_t cur_w = W;
  if (OW != W) {
    const ResampleAxis ax = bicubic_axis(W, OW);
    tmp.resize(H * OW * 3);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < OW; ++x)
        for (int c = 0; c < 3; ++c) {
          int32_t sum = half;
          for (int t = 0; t < ax.count[x]; ++t)
            sum += a.src[(y * W + ax.first[x] + t) * 3 + c] * ax.weights[x * ax.taps + t];
          tmp[(y * OW + x) * 3 + c] = resample_clip8(sum);
        }
    cur = tmp.data();
    cur_w = OW;
  }
  if (OH != H) {
    const ResampleAxis ay = bicubic_axis(H, OH);
    for (int64_t y = 0; y < OH; ++y)
      for (int64_t x = 0; x < cur_w; ++x)
        for (int c = 0; c < 3; ++c) {
          int32_t sum = half;
          for (int t = 0; t < ay.count[y]; ++t)
            sum += cur[((ay.first[y] + t) * cur_w + x) * 3 + c] * ay.weights[y * ay.taps + t];
          a.dst[(y * cur_w + x) * 3 + c] = resample_clip8(sum);
        }
  } else {
    std::memcpy(a.dst, cur, H * cur_w * 3);  // no vertical pass (or a same-size copy)
  }
}

namespace {

// The horizontal pass runs on panels of 16 input rows transposed to column-major bytes
// (panel[i * 16 + r] = row r, byte i): each output byte is then one 16-lane multiply-add per
// tap with the tap's weight broadcast, which vectorizes like the vertical pass (the row-major
// form needs a different weight per output pixel and stays scalar, ~5x slower).
constexpr int kPanel = 16;

#if defined(__SSE2__)
// 16x16 byte transpose: out[j] = byte j of every in[r] (four rounds of unpacks).
inline void transpose16x16(const __m128i in[16], __m128i out[16]) {
  __m128i t[16], u[16], v[16];
  for (int k = 0; k < 8; ++k) {  // byte pairs of rows (2k, 2k+1)
    t[2 * k] = _mm_unpacklo_epi8(in[2 * k], in[2 * k + 1]);
    t[2 * k + 1] = _mm_unpackhi_epi8(in[2 * k], in[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k)  // rows 4k..4k+3, columns 4m..4m+3 in u[4k + m]
    for (int h = 0; h < 2; ++h) {
      u[4 * k + 2 * h] = _mm_unpacklo_epi16(t[4 * k + h], t[4 * k + 2 + h]);
      u[4 * k + 2 * h + 1] = _mm_unpackhi_epi16(t[4 * k + h], t[4 * k + 2 + h]);
    }
  for (int g = 0; g < 2; ++g)  // rows 8g..8g+7, columns 2n, 2n+1 in v[8g + n]
    for (int m = 0; m < 4; ++m) {
      v[8 * g + 2 * m] = _mm_unpacklo_epi32(u[8 * g + m], u[8 * g + 4 + m]);
      v[8 * g + 2 * m + 1] = _mm_unpackhi_epi32(u[8 * g + m], u[8 * g + 4 + m]);
    }
  for (int n = 0; n < 8; ++n) {
    out[2 * n] = _mm_unpacklo_epi64(v[n], v[8 + n]);
    out[2 * n + 1] = _mm_unpackhi_epi64(v[n], v[8 + n]);
  }
}
#endif

#if defined(__aarch64__)
// The same transpose in NEON: zip1 / zip2 are unpacklo / unpackhi, at 8, 16, 32 and 64 bits.
inline void transpose16x16_neon(const uint8x16_t in[16], uint8x16_t out[16]) {
  uint8x16_t t[16];
  uint16x8_t u[16];
  uint32x4_t v[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = vzip1q_u8(in[2 * k], in[2 * k + 1]);
    t[2 * k + 1] = vzip2q_u8(in[2 * k], in[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k)
    for (int h = 0; h < 2; ++h) {
      const uint16x8_t a = vreinterpretq_u16_u8(t[4 * k + h]), b = vreinterpretq_u16_u8(t[4 * k + 2 + h]);
      u[4 * k + 2 * h] = vzip1q_u16(a, b);
      u[4 * k + 2 * h + 1] = vzip2q_u16(a, b);
    }
  for (int g = 0; g < 2; ++g)
    for (int m = 0; m < 4; ++m) {
      const uint32x4_t a = vreinterpretq_u32_u16(u[8 * g + m]), b = vreinterpretq_u32_u16(u[8 * g + 4 + m]);
      v[8 * g + 2 * m] = vzip1q_u32(a, b);
      v[8 * g + 2 * m + 1] = vzip2q_u32(a, b);
    }
  for (int n = 0; n < 8; ++n) {
    const uint64x2_t a = vreinterpretq_u64_u32(v[n]), b = vreinterpretq_u64_u32(v[8 + n]);
    out[2 * n] = vreinterpretq_u8_u64(vzip1q_u64(a, b));
    out[2 * n + 1] = vreinterpretq_u8_u64(vzip2q_u64(a, b));
  }
}
#endif

// rows[r] (r < 16, each `len` bytes) -> panel[i * 16 + r].
void panel_load(const uint8_t* const rows[kPanel], int64_t len, uint8_t* panel) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= len; i += 16) {
    __m128i in[16], out[16];
    for (int r = 0; r < 16; ++r) in[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + i));
    transpose16x16(in, out);
    for (int j = 0; j < 16; ++j) _mm_storeu_si128(reinterpret_cast<__m128i*>(panel + (i + j) * 16), out[j]);
  }
#elif defined(__aarch64__)
  for (; cpu_neon() && i + 16 <= len; i += 16) {
    uint8x16_t in[16], out[16];
    for (int r = 0; r < 16; ++r) in[r] = vld1q_u8(rows[r] + i);
    transpose16x16_neon(in, out);
    for (int j = 0; j < 16; ++j) vst1q_u8(panel + (i + j) * 16, out[j]);
  }
#endif
  for (; i < len; ++i)
    for (int r = 0; r < kPanel; ++r) panel[i * kPanel + r] = rows[r][i];
}

// panel[i * 16 + r] -> rows[r][i] for the first n_rows rows.
void panel_store(const uint8_t* panel, int64_t len, int n_rows, uint8_t* const rows[kPanel]) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= len; i += 16) {
    __m128i in[16], out[16];
    for (int j = 0; j < 16; ++j) in[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + (i + j) * 16));
    transpose16x16(in, out);
    for (int r = 0; r < n_rows; ++r) _mm_storeu_si128(reinterpret_cast<__m128i*>(rows[r] + i), out[r]);
  }
#elif defined(__aarch64__)
  for (; cpu_neon() && i + 16 <= len; i += 16) {
    uint8x16_t in[16], out[16];
    for (int j = 0; j < 16; ++j) in[j] = vld1q_u8(panel + (i + j) * 16);
    transpose16x16_neon(in, out);
    for (int r = 0; r < n_rows; ++r) vst1q_u8(rows[r] + i, out[r]);
  }
#endif
  for (; i < len; ++i)
    for (int r = 0; r < n_rows; ++r) rows[r][i] = panel[i * kPanel + r];
}

// The horizontal pass of one transposed panel: out[(x * 3 + c) * 16 + r].
SR3D_TARGET_CLONES
void resample_panel_h(const uint8_t* panel, const ResampleAxis& ax, uint8_t* out) {
  const int32_t half = 1 << (kResamplePrecisionBits - 1);
  for (int64_t x = 0; x < ax.out_size; ++x) {
    const int32_t* k = ax.weights.data() + x * ax.taps;
    const int n = ax.count[x];
    for (int c = 0; c < 3; ++c) {
      const uint8_t* col = panel + (3 * static_cast<int64_t>(ax.first[x]) + c) * kPanel;
      int32_t acc[kPanel];
      for (int r = 0; r < kPanel; ++r) acc[r] = half;
      for (int t = 0; t < n; ++t) {
        const int32_t w = k[t];
        const uint8_t* p = col + 3 * t * kPanel;
        for (int r = 0; r < kPanel; ++r) acc[r] += p[r] * w;
      }
      uint8_t* o = out + (3 * x + c) * kPanel;
      for (int r = 0; r < kPanel; ++r) o[r] = resample_clip8(acc[r]);
    }
  }
}

// One row of the vertical pass: n input rows (stride apart) weighted by k, `len` bytes wide.
// The same weight for the whole row makes this a vector multiply-add. Taps go four at a time
// into an int32 chunk that stays in L1 (one accumulator round trip per four taps).
SR3D_TARGET_CLONES
void resample_row_v(const uint8_t* rows, int64_t stride, int n, const int32_t* k, int64_t len,
                    uint8_t* out) {
  constexpr int64_t kChunk = 1024;
  int32_t acc[kChunk];
  const int32_t half = 1 << (kResamplePrecisionBits - 1);
  for (int64_t i0 = 0; i0 < len; i0 += kChunk) {
    const int64_t m = std::min(kChunk, len - i0);
    for (int64_t i = 0; i < m; ++i) acc[i] = half;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
      const uint8_t* r0 = rows + t * stride + i0;
      const uint8_t* r1 = r0 + stride;
      const uint8_t* r2 = r1 + stride;
      const uint8_t* r3 = r2 + stride;
      const int32_t w0 = k[t], w1 = k[t + 1], w2 = k[t + 2], w3 = k[t + 3];
      for (int64_t i = 0; i < m; ++i) acc[i] += r0[i] * w0 + r1[i] * w1 + r2[i] * w2 + r3[i] * w3;
    }
    for (; t < n; ++t) {
      const uint8_t* r = rows + t * stride + i0;
      const int32_t w = k[t];
      for (int64_t i = 0; i < m; ++i) acc[i] += r[i] * w;
    }
    for (int64_t i = 0; i < m; ++i) out[i0 + i] = resample_clip8(acc[i]);
  }
}

// Per-thread scratch that survives across calls (no page faults per band); very large
// requests (extreme downscales) get a temporary buffer instead of growing it for good.
class Scratch {
 public:
  uint8_t* get(size_t bytes) {
    if (bytes > kKeepBytes) {
      big_.resize(bytes);
      return big_.data();
    }
    if (keep_.size() < bytes) keep_.resize(bytes);
    return keep_.data();
  }
  void release_big() { std::vector<uint8_t>().swap(big_); }

 private:
  static constexpr size_t kKeepBytes = 16u << 20;
  std::vector<uint8_t> keep_, big_;
};

}  // namespace

ResamplePlan resample_plan(int64_t height, int64_t width, int64_t out_height, int64_t out_width) {
  ResamplePlan p;
  p.need_h = out_width != width;
  p.need_v = out_height != height;
  if (p.need_h) p.h = bicubic_axis(width, out_width);
  if (p.need_v) p.v = bicubic_axis(height, out_height);
  p.h.out_size = out_width;  // the row width either way
  p.v.out_size = out_height;
  return p;
}

void resample_rows(const uint8_t* src, int64_t height, int64_t width, const ResamplePlan& plan,
                   int64_t row_begin, int64_t row_end,
                   const std::function<void(int64_t y, const uint8_t* row)>& emit) {
  thread_local Scratch hscratch, vscratch;
  const int64_t row_bytes = 3 * plan.h.out_size;
  uint8_t* out_row = plan.need_v ? vscratch.get(row_bytes) : nullptr;
  for (int64_t y0 = row_begin; y0 < row_end; y0 += kResampleBandRows) {
    const int64_t y1 = std::min(y0 + kResampleBandRows, row_end);
    // The input rows this band's outputs read.
    int64_t r0 = y0, r1 = y1;
    if (plan.need_v) {
      r0 = plan.v.first[y0];
      r1 = r0;
      for (int64_t y = y0; y < y1; ++y)
        r1 = std::max<int64_t>(r1, plan.v.first[y] + plan.v.count[y]);
    }
    if (r0 < 0 || r1 > height || (plan.need_h && plan.h.in_size != width))
      throw_internal("resample_rows: the plan does not match the " + std::to_string(height) + "x" +
                     std::to_string(width) + " source");
    const uint8_t* rows;  // row r of the horizontal pass at rows + (r - r0) * row_bytes
    if (plan.need_h) {
      const int64_t in_bytes = 3 * width;
      uint8_t* h = hscratch.get((r1 - r0) * row_bytes + kPanel * (in_bytes + row_bytes));
      uint8_t* panel_in = h + (r1 - r0) * row_bytes;
      uint8_t* panel_out = panel_in + kPanel * in_bytes;
      for (int64_t p0 = r0; p0 < r1; p0 += kPanel) {
        const int n = static_cast<int>(std::min<int64_t>(kPanel, r1 - p0));
        const uint8_t* in_rows[kPanel];
        uint8_t* out_rows[kPanel];
        for (int r = 0; r < kPanel; ++r) {  // a short last panel repeats its last row
          in_rows[r] = src + (p0 + std::min(r, n - 1)) * in_bytes;
          out_rows[r] = h + (p0 - r0 + std::min(r, n - 1)) * row_bytes;
        }
        panel_load(in_rows, in_bytes, panel_in);
        resample_panel_h(panel_in, plan.h, panel_out);
        panel_store(panel_out, row_bytes, n, out_rows);
      }
      rows = h;
    } else {
      rows = src + r0 * row_bytes;
    }
    for (int64_t y = y0; y < y1; ++y) {
      if (plan.need_v) {
        resample_row_v(rows + (plan.v.first[y] - r0) * row_bytes, row_bytes, plan.v.count[y],
                       plan.v.weights.data() + y * plan.v.taps, row_bytes, out_row);
        emit(y, out_row);
      } else {
        emit(y, rows + (y - r0) * row_bytes);
      }
    }
  }
  hscratch.release_big();
  vscratch.release_big();
}

void resize_bicubic_fast(const ResizeBicubicArgs& a) {
  const int64_t row_bytes = a.out_width * 3;
  if (a.out_width == a.width && a.out_height == a.height) {  // Pillow returns a copy
    parallel_for(a.height, 0, [&](int, int64_t y0, int64_t y1) {
      std::memcpy(a.dst + y0 * row_bytes, a.src + y0 * row_bytes, (y1 - y0) * row_bytes);
    });
    return;
  }
  const ResamplePlan plan = resample_plan(a.height, a.width, a.out_height, a.out_width);
  const int64_t bands = (a.out_height + kResampleBandRows - 1) / kResampleBandRows;
  parallel_for(bands, static_cast<int>(std::min<int64_t>(bands, INT_MAX)), [&](int, int64_t b0, int64_t b1) {
    resample_rows(a.src, a.height, a.width, plan, b0 * kResampleBandRows,
                  std::min(b1 * kResampleBandRows, a.out_height),
                  [&](int64_t y, const uint8_t* row) { std::memcpy(a.dst + y * row_bytes, row, row_bytes); });
  });
}

}  // namespace cpu
}  // namespace sr3d
