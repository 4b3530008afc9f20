// Standalone tests and benchmarks of the tiling kernels (resize_bicubic, tile_image,
// tile_nearest); no Node. Same command line as every tests_cpp executable (harness.h):
//
//   sr3d_tiling_tests [--filter SUBSTR]      Impl::kFast (and Impl::kCuda with a usable device)
//                                            against Impl::kReference, bit for bit, over
//                                            awkward sizes, plus invariants of Pillow's math
//   sr3d_tiling_tests --bench [--json] [--json-out FILE] [--device cpu|cuda|all]
//
// Every comparison is exact: the resamplers are integer arithmetic on coefficients computed
// once on the host, and tile floats come from one float32 formula. (The reference itself is
// checked against Pillow 9.4 outputs in test/tiling.test.ts, which has the fixtures.)
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "resize_bicubic.h"
#include "tile_image.h"
#include "tile_nearest.h"

using namespace sr3d;
using namespace sr3d_test;

namespace {

enum class Pixels { kNoise, kSmooth, kConstant, kExtremes };
const char* pixels_name(Pixels p) {
  switch (p) {
    case Pixels::kNoise: return "noise";
    case Pixels::kSmooth: return "smooth";
    case Pixels::kConstant: return "constant";
    case Pixels::kExtremes: return "extremes";
  }
  return "?";
}

// (h, w, 3) uint8. Extremes: a 0/255 checkerboard, the case where the bicubic lobes overshoot
// most and clip8 saturates on both sides.
std::vector<uint8_t> make_image(int64_t h, int64_t w, Pixels kind, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> img(h * w * 3);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        uint8_t& v = img[(y * w + x) * 3 + c];
        switch (kind) {
          case Pixels::kNoise: v = static_cast<uint8_t>(rng.integer(0, 255)); break;
          case Pixels::kSmooth:
            v = static_cast<uint8_t>(std::min<int64_t>(255, (x * 255) / std::max<int64_t>(w, 1) / 2 +
                                                               (y * 127) / std::max<int64_t>(h, 1) +
                                                               rng.integer(0, 3)));
            break;
          case Pixels::kConstant: v = static_cast<uint8_t>(37 + 80 * c); break;
          case Pixels::kExtremes: v = ((x + y) % 2) ? 255 : 0; break;
        }
      }
  return img;
}

std::string size_str(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

// ---- bicubic_axis: Pillow's coefficient invariants ---------------------------------------
void test_axis(int64_t in, int64_t out) {
  const std::string name = "bicubic_axis/in=" + std::to_string(in) + ",out=" + std::to_string(out);
  if (!begin_case(name)) return;
  const ResampleAxis ax = bicubic_axis(in, out);
  std::string detail;
  const double f = std::max(1.0, static_cast<double>(in) / out);
  if (ax.taps != static_cast<int>(std::ceil(2 * f)) * 2 + 1) detail += "taps " + std::to_string(ax.taps) + "; ";
  for (int64_t i = 0; i < out && detail.empty(); ++i) {
    int64_t sum = 0;
    for (int t = 0; t < ax.taps; ++t) {
      if (t >= ax.count[i] && ax.weights[i * ax.taps + t] != 0) detail = "a weight past count at " + std::to_string(i);
      sum += ax.weights[i * ax.taps + t];
    }
    // Normalized to 1 before rounding each weight to 2^-22: the sum is 2^22 within count/2.
    if (std::llabs(sum - (int64_t(1) << 22)) > ax.count[i])
      detail = "weights of output " + std::to_string(i) + " sum to " + std::to_string(sum);
    if (ax.first[i] < 0 || ax.count[i] < 1 || ax.first[i] + ax.count[i] > in || ax.count[i] > ax.taps)
      detail = "taps of output " + std::to_string(i) + " outside the input";
    if (i > 0 && (ax.first[i] < ax.first[i - 1] || ax.first[i] + ax.count[i] < ax.first[i - 1] + ax.count[i - 1]))
      detail = "windows not monotone at " + std::to_string(i);
  }
  record(detail.empty(), name, detail, nullptr);
}

// ---- resize_bicubic ----------------------------------------------------------------------
void test_resize(int64_t h, int64_t w, int64_t oh, int64_t ow, Pixels kind) {
  const std::string name = "resize_bicubic/" + size_str(h, w) + "->" + size_str(oh, ow) + ",pixels=" + pixels_name(kind);
  if (!begin_case(name)) return;
  const std::vector<uint8_t> src = make_image(h, w, kind, 100 + h * 7 + w * 3 + oh + ow);
  auto run = [&](Impl impl, std::vector<uint8_t>& dst) {
    return run_op([&] {
      ResizeBicubicArgs a;
      a.src = src.data();
      a.height = h;
      a.width = w;
      a.dst = dst.data();
      a.out_height = oh;
      a.out_width = ow;
      resize_bicubic(a, impl);
    });
  };
  std::vector<uint8_t> want(oh * ow * 3);
  Outcome wo = run(Impl::kReference, want);
  if (!wo.threw) {
    if (oh == h && ow == w) check_bytes(name + " [reference same size is a copy]", want, src, {oh, ow, 3});
    if (kind == Pixels::kConstant) {  // weights sum to 1 within rounding: a flat image stays flat
      std::vector<uint8_t> flat(want.size());
      for (size_t i = 0; i < flat.size(); ++i) flat[i] = src[i % 3];
      check_bytes(name + " [reference keeps a constant image]", want, flat, {oh, ow, 3});
    }
  }
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<uint8_t> got(want.size(), 0xCD);
    Outcome go = run(impl, got);
    if (same_outcome(ctx, go, wo)) continue;
    check_bytes(ctx, got, want, {oh, ow, 3});
  }
}

// ---- tile_image ----------------------------------------------------------------------------
void test_tile_image(int64_t h, int64_t w, int64_t cols, int64_t rows, int64_t tile, Pixels kind) {
  const std::string name = "tile_image/" + size_str(h, w) + ",grid=" + std::to_string(cols) + "x" +
                           std::to_string(rows) + ",tile=" + std::to_string(tile) + ",pixels=" + pixels_name(kind);
  if (!begin_case(name)) return;
  const std::vector<uint8_t> src = make_image(h, w, kind, 900 + h + w * 5 + cols * 11 + rows);
  const int64_t n = tile_count(cols, rows);
  auto run = [&](Impl impl, std::vector<float>& tiles) {
    return run_op([&] {
      TileImageArgs a;
      a.src = src.data();
      a.height = h;
      a.width = w;
      a.cols = cols;
      a.rows = rows;
      a.tile = tile;
      a.tiles = tiles.data();
      tile_image(a, impl);
    });
  };
  const std::vector<int64_t> shape = {n, 3, tile, tile};
  std::vector<float> want(n * 3 * tile * tile);
  Outcome wo = run(Impl::kReference, want);
  if (!wo.threw) {
    // The reference is resize_bicubic + crop + normalize: check one grid tile and the thumbnail.
    auto resized = [&](int64_t oh, int64_t ow) {
      std::vector<uint8_t> out(oh * ow * 3);
      ResizeBicubicArgs r;
      r.src = src.data();
      r.height = h;
      r.width = w;
      r.dst = out.data();
      r.out_height = oh;
      r.out_width = ow;
      resize_bicubic(r, Impl::kFast);
      return out;
    };
    auto crop = [&](const std::vector<uint8_t>& img, int64_t img_w, int64_t x0, int64_t y0) {
      std::vector<float> t(3 * tile * tile);
      for (int c = 0; c < 3; ++c)
        for (int64_t y = 0; y < tile; ++y)
          for (int64_t x = 0; x < tile; ++x)
            t[(c * tile + y) * tile + x] = siglip_normalize(img[((y0 + y) * img_w + x0 + x) * 3 + c]);
      return t;
    };
    const int64_t last = cols * rows - 1, plane3 = 3 * tile * tile;
    const std::vector<uint8_t> grid = resized(tile * rows, tile * cols);
    std::vector<float> got_last(want.begin() + last * plane3, want.begin() + (last + 1) * plane3);
    check_floats(name + " [reference tile " + std::to_string(last) + " vs resize_bicubic + crop]", got_last,
                 crop(grid, tile * cols, (last % cols) * tile, (last / cols) * tile), {3, tile, tile}, 0);
    if (n > cols * rows) {
      std::vector<float> got_thumb(want.end() - plane3, want.end());
      check_floats(name + " [reference thumbnail vs resize_bicubic]", got_thumb, crop(resized(tile, tile), tile, 0, 0),
                   {3, tile, tile}, 0);
    }
  }
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(want.size(), 12345.0f);
    Outcome go = run(impl, got);
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx, got, want, shape, 0);
  }
}

// ---- tile_nearest --------------------------------------------------------------------------
void test_tile_nearest(int64_t h, int64_t w, int64_t pixel_bytes, int64_t cols, int64_t rows, int64_t tile) {
  const std::string name = "tile_nearest/" + size_str(h, w) + ",pixel_bytes=" + std::to_string(pixel_bytes) +
                           ",grid=" + std::to_string(cols) + "x" + std::to_string(rows) + ",tile=" + std::to_string(tile);
  if (!begin_case(name)) return;
  Rng rng(31 + h * w + pixel_bytes);
  std::vector<uint8_t> src(h * w * pixel_bytes);
  for (uint8_t& b : src) b = static_cast<uint8_t>(rng.integer(0, 255));
  if (pixel_bytes == 12 && !src.empty()) {  // a NaN with a payload must come through as is
    const uint32_t nan_bits = 0x7fc0abcdu;
    std::memcpy(src.data() + 4, &nan_bits, 4);
  }
  const int64_t n = tile_count(cols, rows);
  auto run = [&](Impl impl, std::vector<uint8_t>& dst) {
    return run_op([&] {
      TileNearestArgs a;
      a.src = src.data();
      a.height = h;
      a.width = w;
      a.pixel_bytes = pixel_bytes;
      a.cols = cols;
      a.rows = rows;
      a.tile = tile;
      a.dst = dst.data();
      tile_nearest(a, impl);
    });
  };
  const std::vector<int64_t> shape = {n, tile, tile, pixel_bytes};
  std::vector<uint8_t> want(n * tile * tile * pixel_bytes);
  Outcome wo = run(Impl::kReference, want);
  if (!wo.threw) {
    // Every output pixel is some input pixel (no blending).
    const std::vector<int32_t> gx = nearest_index(w, tile * cols), gy = nearest_index(h, tile * rows);
    const int64_t k = cols * rows - 1, y = tile - 1, x = tile / 2;
    const int64_t sx = gx[(k % cols) * tile + x], sy = gy[(k / cols) * tile + y];
    std::vector<uint8_t> got_px(want.begin() + ((k * tile + y) * tile + x) * pixel_bytes,
                                want.begin() + ((k * tile + y) * tile + x + 1) * pixel_bytes);
    std::vector<uint8_t> want_px(src.begin() + (sy * w + sx) * pixel_bytes, src.begin() + (sy * w + sx + 1) * pixel_bytes);
    check_bytes(name + " [reference pixel vs its source pixel]", got_px, want_px, {pixel_bytes});
  }
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<uint8_t> got(want.size(), 0xCD);
    Outcome go = run(impl, got);
    if (same_outcome(ctx, go, wo)) continue;
    check_bytes(ctx, got, want, shape);
  }
}

// Pillow 9.4's NEAREST maps (from test/fixtures/resize/index.json): 2 -> 7 is where the
// accumulated coordinate (3 steps of 2/7 from 1/7: 0.99999...) and (x + 0.5) * in/out = 1 differ.
void test_nearest_index() {
  struct Case {
    int64_t in, out;
    std::vector<int32_t> want;
  };
  const Case cases[] = {{2, 7, {0, 0, 0, 0, 1, 1, 1}},
                        {3, 5, {0, 0, 1, 2, 2}},
                        {7, 3, {1, 3, 5}},
                        {5, 13, {0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4}}};
  for (const Case& c : cases) {
    const std::string name = "nearest_index/in=" + std::to_string(c.in) + ",out=" + std::to_string(c.out);
    if (!begin_case(name)) continue;
    const std::vector<int32_t> got = nearest_index(c.in, c.out);
    std::string detail;
    for (size_t i = 0; i < c.want.size(); ++i)
      if (got[i] != c.want[i])
        detail += "[" + std::to_string(i) + "] " + std::to_string(got[i]) + " != " + std::to_string(c.want[i]) + "; ";
    record(detail.empty(), name + " [vs Pillow 9.4]", detail, nullptr);
  }
}

// ---- argument errors -----------------------------------------------------------------------
void test_errors() {
  std::vector<uint8_t> img(4 * 5 * 3, 7), out(16 * 16 * 3 * 12);
  std::vector<float> tiles(2 * 3 * 4 * 4);
  for (Impl impl : {Impl::kReference, Impl::kFast, Impl::kCuda}) {
    const std::string suffix = std::string(" [") + impl_name(impl) + "]";
    expect_error("errors/resize_bicubic zero output width" + suffix, ErrorKind::kInvalidArgument, [&] {
      ResizeBicubicArgs a;
      a.src = img.data();
      a.height = 4;
      a.width = 5;
      a.dst = out.data();
      a.out_height = 3;
      a.out_width = 0;
      resize_bicubic(a, impl);
    });
    expect_error("errors/resize_bicubic zero input height" + suffix, ErrorKind::kInvalidArgument, [&] {
      ResizeBicubicArgs a;
      a.src = img.data();
      a.height = 0;
      a.width = 5;
      a.dst = out.data();
      a.out_height = 3;
      a.out_width = 3;
      resize_bicubic(a, impl);
    });
    expect_error("errors/resize_bicubic width beyond 2^24" + suffix, ErrorKind::kInvalidArgument, [&] {
      ResizeBicubicArgs a;
      a.src = img.data();
      a.height = 4;
      a.width = (int64_t(1) << 24) + 1;
      a.dst = out.data();
      a.out_height = 4;
      a.out_width = 5;
      resize_bicubic(a, impl);
    });
    expect_error("errors/tile_image cols 0" + suffix, ErrorKind::kInvalidArgument, [&] {
      TileImageArgs a;
      a.src = img.data();
      a.height = 4;
      a.width = 5;
      a.cols = 0;
      a.tile = 4;
      a.tiles = tiles.data();
      tile_image(a, impl);
    });
    expect_error("errors/tile_image tile 0" + suffix, ErrorKind::kInvalidArgument, [&] {
      TileImageArgs a;
      a.src = img.data();
      a.height = 4;
      a.width = 5;
      a.tile = 0;
      a.tiles = tiles.data();
      tile_image(a, impl);
    });
    expect_error("errors/tile_nearest pixel_bytes 0" + suffix, ErrorKind::kInvalidArgument, [&] {
      TileNearestArgs a;
      a.src = img.data();
      a.height = 4;
      a.width = 5;
      a.pixel_bytes = 0;
      a.tile = 4;
      a.dst = out.data();
      tile_nearest(a, impl);
    });
    expect_error("errors/tile_nearest empty map" + suffix, ErrorKind::kInvalidArgument, [&] {
      TileNearestArgs a;
      a.src = img.data();
      a.height = 0;
      a.width = 5;
      a.tile = 4;
      a.dst = out.data();
      tile_nearest(a, impl);
    });
  }
  if (!g_cuda) {  // Impl::kCuda without a device (or without CUDA): a typed error, no abort
#ifdef SR3D_WITH_CUDA
    const ErrorKind want = ErrorKind::kCuda;
#else
    const ErrorKind want = ErrorKind::kInvalidArgument;
#endif
    expect_error("errors/tile_image cuda without a usable device", want, [&] {
      TileImageArgs a;
      a.src = img.data();
      a.height = 4;
      a.width = 5;
      a.tile = 4;
      a.tiles = tiles.data();
      tile_image(a, Impl::kCuda);
    });
  }
}

void run_tests() {
  // Pillow's pass structure: both passes, horizontal only, vertical only, same size; up and
  // down by integer and awkward factors; 1-pixel edges; prime sizes; extreme ratios.
  struct Sz { int64_t h, w, oh, ow; };
  const Sz sizes[] = {{1, 1, 1, 1},       {1, 1, 448, 448},   {5, 7, 448, 448},    {7, 13, 1, 1},
                      {480, 640, 1344, 1792}, {480, 640, 448, 448}, {480, 640, 480, 641}, {480, 640, 479, 640},
                      {480, 640, 480, 640}, {480, 640, 1, 480},  {480, 640, 37, 2000}, {1, 640, 3, 5},
                      {480, 1, 448, 448},  {1080, 1920, 896, 1792}, {1080, 1920, 448, 448}, {7, 5000, 448, 448},
                      {97, 211, 89, 233},  {2, 3, 1000, 2},   {300, 1000, 448, 1344}};
  for (const Sz& s : sizes)
    for (Pixels p : {Pixels::kNoise, Pixels::kExtremes, Pixels::kConstant})
      test_resize(s.h, s.w, s.oh, s.ow, p);
  test_resize(480, 640, 1344, 1792, Pixels::kSmooth);

  for (int64_t in : {1, 2, 3, 7, 448, 480, 1080, 1920, 5000})
    for (int64_t out : {1, 3, 448, 896, 1792})
      test_axis(in, out);

  // Grids of VILA's candidate set (and a 1x1 multi-view frame), real and small tile sizes.
  struct Grid { int64_t h, w, cols, rows, tile; };
  const Grid grids[] = {{480, 640, 4, 3, 448}, {1080, 1920, 4, 2, 448}, {480, 640, 1, 1, 448},
                        {448, 448, 1, 1, 448}, {896, 1344, 3, 2, 448}, {1, 1, 2, 1, 14},
                        {13, 7, 1, 2, 5},      {300, 1000, 3, 1, 64},  {97, 211, 2, 5, 17},
                        {5, 3, 12, 1, 8}};
  for (const Grid& g : grids)
    for (Pixels p : {Pixels::kNoise, Pixels::kSmooth})
      test_tile_image(g.h, g.w, g.cols, g.rows, g.tile, p);
  test_tile_image(480, 640, 4, 3, 448, Pixels::kExtremes);

  for (int64_t pb : {1, 12, 3})
    for (const Grid& g : grids) test_tile_nearest(g.h, g.w, pb, g.cols, g.rows, g.tile);

  test_nearest_index();
  test_errors();
}

// ---- benchmarks ------------------------------------------------------------------------------
// Bytes: the source read once, the output written once (tiles as float32): the floor any
// implementation must move. The uint8 intermediate of the horizontal pass stays in cache on
// the CPU (bands of 64 rows) and is not counted.
struct BenchCase {
  const char* op;
  int64_t h, w, cols, rows;
};
const BenchCase kBench[] = {{"tile_image", 480, 640, 4, 3}, {"tile_image", 1080, 1920, 4, 2},
                            {"resize_bicubic", 480, 640, 4, 3}, {"tile_nearest", 480, 640, 4, 3}};

std::string bench_shape(const BenchCase& c) {
  const int64_t n = tile_count(c.cols, c.rows);
  if (std::string(c.op) == "resize_bicubic")
    return size_str(c.h, c.w) + "x3 -> " + size_str(448 * c.rows, 448 * c.cols) + "x3 u8";
  if (std::string(c.op) == "tile_nearest")
    return size_str(c.h, c.w) + "x3 f32 -> " + std::to_string(n) + "x448x448x3";
  return size_str(c.h, c.w) + "x3 -> " + std::to_string(n) + "x3x448x448 f32";
}
double bench_bytes(const BenchCase& c) {
  const int64_t n = tile_count(c.cols, c.rows), px = 448 * 448;
  if (std::string(c.op) == "resize_bicubic") return 3.0 * c.h * c.w + 3.0 * px * c.cols * c.rows;
  if (std::string(c.op) == "tile_nearest") return 12.0 * c.h * c.w + 12.0 * px * n;
  return 3.0 * c.h * c.w + 12.0 * px * n;
}

// Runs one case on `impl` with buffers given by the caller (host or device).
void bench_call(const BenchCase& c, Impl impl, const void* src, void* dst, void* stream) {
  const std::string op = c.op;
  if (op == "resize_bicubic") {
    ResizeBicubicArgs a;
    a.src = static_cast<const uint8_t*>(src);
    a.height = c.h;
    a.width = c.w;
    a.dst = static_cast<uint8_t*>(dst);
    a.out_height = 448 * c.rows;
    a.out_width = 448 * c.cols;
#ifdef SR3D_WITH_CUDA
    if (impl == Impl::kCuda) return cuda::resize_bicubic(a, stream);
#endif
    return resize_bicubic(a, impl);
  }
  if (op == "tile_nearest") {
    TileNearestArgs a;
    a.src = static_cast<const uint8_t*>(src);
    a.height = c.h;
    a.width = c.w;
    a.pixel_bytes = 12;
    a.cols = c.cols;
    a.rows = c.rows;
    a.dst = static_cast<uint8_t*>(dst);
#ifdef SR3D_WITH_CUDA
    if (impl == Impl::kCuda) return cuda::tile_nearest(a, stream);
#endif
    return tile_nearest(a, impl);
  }
  TileImageArgs a;
  a.src = static_cast<const uint8_t*>(src);
  a.height = c.h;
  a.width = c.w;
  a.cols = c.cols;
  a.rows = c.rows;
  a.tiles = static_cast<float*>(dst);
#ifdef SR3D_WITH_CUDA
  if (impl == Impl::kCuda) return cuda::tile_image(a, stream);
#endif
  (void)stream;
  tile_image(a, impl);
}

size_t bench_src_bytes(const BenchCase& c) {
  return static_cast<size_t>(c.h * c.w * (std::string(c.op) == "tile_nearest" ? 12 : 3));
}
size_t bench_dst_bytes(const BenchCase& c) {
  const int64_t px = 448 * 448;
  if (std::string(c.op) == "resize_bicubic") return static_cast<size_t>(3 * px * c.cols * c.rows);
  return static_cast<size_t>(12 * px * tile_count(c.cols, c.rows));  // 3 float32 per pixel either way
}

void bench_cpu(std::vector<BenchRow>& rows) {
  const int thr = cpu_threads();
  const double peak = measure_cpu_peak(rows);
  for (const BenchCase& c : kBench) {
    Rng rng(5);
    std::vector<uint8_t> src(bench_src_bytes(c));
    for (uint8_t& b : src) b = static_cast<uint8_t>(rng.integer(0, 255));
    std::vector<uint8_t> dst(bench_dst_bytes(c));
    const double ms = cpu_median_ms([&] { bench_call(c, Impl::kFast, src.data(), dst.data(), nullptr); });
    rows.push_back(make_row(c.op, bench_shape(c), "cpu", thr, ms, bench_bytes(c), peak, kCpuCacheBytes));
    if (std::string(c.op) == "tile_image") {  // the plain loops, one thread: the fused path's baseline
      const double ref_ms = cpu_median_ms([&] { bench_call(c, Impl::kReference, src.data(), dst.data(), nullptr); });
      rows.push_back(make_row("tile_image (reference)", bench_shape(c), "cpu", 1, ref_ms, bench_bytes(c), peak,
                              kCpuCacheBytes));
    }
  }
}

#ifdef SR3D_WITH_CUDA
void bench_cuda(std::vector<BenchRow>& rows) {
  std::string dev;
  if (!bench_cuda_device(&dev)) return;
  cuda::Stream stream_holder;
  cudaStream_t stream = stream_holder.get();
  const double peak = measure_gpu_peak(stream, dev, rows);
  for (const BenchCase& c : kBench) {
    Rng rng(5);
    std::vector<uint8_t> host(bench_src_bytes(c));
    for (uint8_t& b : host) b = static_cast<uint8_t>(rng.integer(0, 255));
    cuda::DeviceBuffer<uint8_t> src = to_device(host), dst(bench_dst_bytes(c));
    const double ms = gpu_median_ms(stream, [&] { bench_call(c, Impl::kCuda, src.get(), dst.get(), stream); });
    rows.push_back(make_row(c.op, bench_shape(c), dev, 0, ms, bench_bytes(c), peak, kGpuCacheBytes));
  }
}
#endif

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device == "cpu" || device == "all") bench_cpu(rows);
#ifdef SR3D_WITH_CUDA
  if (device == "cuda" || device == "all") bench_cuda(rows);
#endif
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
