// The shared harness of the standalone C++ test/bench executables (tests_cpp/*.cc): the
// pass/fail tally, comparisons that print the worst element with its index and shape,
// typed-error outcomes, a seeded RNG, and the benchmark rows (median time, bytes, GB/s,
// % of the peak measured in the same run). Header-only: each executable includes it once.
//
// A test file defines its cases and calls
//   int main(int argc, char** argv) { return sr3d_test::harness_main(argc, argv, run_tests, run_bench); }
// where run_tests() runs the cases (begin_case + check_* / record) and run_bench(device, rows)
// appends BenchRows for device "cpu", "cuda" or "all". harness_main parses
//   [--filter SUBSTR] | --bench [--json] [--json-out FILE] [--device cpu|cuda|all]
// selects the first usable CUDA device (g_cuda), prints the summary and sets the exit status.
#pragma once
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common.h"
#include "device.h"
#ifdef SR3D_WITH_CUDA
#include "cuda/cuda_util.h"
#endif

namespace sr3d_test {

using sr3d::Error;
using sr3d::ErrorKind;
using sr3d::Impl;

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- reporting -------------------------------------------------------------------------
struct Tally {
  int cases = 0, checks = 0, failed = 0, xfail = 0, xpass = 0;
};
inline Tally g_tally;
inline std::string g_filter;  // --filter SUBSTR: run only the cases whose name contains it
inline bool g_cuda = false;   // a usable CUDA device: compare Impl::kCuda too

inline const char* impl_name(Impl i) {
  switch (i) {
    case Impl::kReference: return "reference";
    case Impl::kFast: return "fast";
    case Impl::kCuda: return "cuda";
  }
  return "?";
}

inline std::vector<Impl> impls_under_test() {
  std::vector<Impl> v = {Impl::kFast};
  if (g_cuda) v.push_back(Impl::kCuda);
  return v;
}

// printf into a std::string (test names and messages).
inline std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
inline std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + ")";
}

inline std::string unravel(int64_t idx, const std::vector<int64_t>& shape) {
  std::vector<int64_t> c(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    int64_t d = shape[i] > 0 ? shape[i] : 1;
    c[i] = idx % d;
    idx /= d;
  }
  return shape_str(c);
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline uint64_t double_bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

// Distance in representable floats (both finite).
inline int64_t ulps(float a, float b) {
  auto key = [](float f) {
    int64_t u = float_bits(f);
    return (u & 0x80000000) ? -(u & 0x7fffffff) : u;
  };
  return std::llabs(key(a) - key(b));
}

// A documented bug marks a check: its failure counts as XFAIL (the run still passes) and
// its pass as XPASS, the cue to remove the marker.
inline void record(bool ok, const std::string& ctx, const std::string& detail, const char* known) {
  ++g_tally.checks;
  if (ok) {
    if (known) {
      ++g_tally.xpass;
      std::printf("  XPASS %s: passes now; remove the known-bug marker (%s)\n", ctx.c_str(), known);
    }
    return;
  }
  if (known) {
    ++g_tally.xfail;
    std::printf("  XFAIL %s: %s\n        known bug: %s\n", ctx.c_str(), detail.c_str(), known);
    return;
  }
  ++g_tally.failed;
  std::printf("  FAIL  %s: %s\n", ctx.c_str(), detail.c_str());
}

// Floats: atol 0 = bit-exact (NaN == NaN regardless of payload); else |got - want| <= atol
// with the NaN pattern equal.
inline void check_floats(const std::string& ctx, const std::vector<float>& got,
                  const std::vector<float>& want, const std::vector<int64_t>& shape, double atol,
                  const char* known = nullptr) {
  int64_t bad = 0, worst = -1;
  double worst_diff = -1;
  for (size_t i = 0; i < want.size(); ++i) {
    float g = got[i], w = want[i];
    bool gn = std::isnan(g), wn = std::isnan(w);
    bool ok;
    double d;
    if (gn || wn) {
      ok = gn && wn;
      d = ok ? 0 : INFINITY;
    } else if (atol == 0) {
      ok = float_bits(g) == float_bits(w);
      d = g == w ? 0 : std::fabs(static_cast<double>(g) - w);  // +-0 differ by 0
    } else {
      d = g == w ? 0 : std::fabs(static_cast<double>(g) - w);
      ok = d <= atol;
    }
    if (!ok) {
      ++bad;
      if (d > worst_diff) {
        worst_diff = d;
        worst = static_cast<int64_t>(i);
      }
    }
  }
  std::string detail;
  if (bad) {
    char buf[512];
    float g = got[worst], w = want[worst];
    std::string ratio = atol == 0 ? "exact required" : std::to_string(worst_diff / atol);
    std::string dist = std::isfinite(g) && std::isfinite(w)
                           ? std::to_string(ulps(g, w)) + " ulp"
                           : std::string("non-finite mismatch");
    std::snprintf(buf, sizeof buf,
                  "%" PRId64 " of %zu differ; max |diff| %.9g at index %" PRId64
                  " = %s of shape %s (got %.9g, want %.9g, %s); ratio to tolerance %s",
                  bad, want.size(), worst_diff, worst, unravel(worst, shape).c_str(),
                  shape_str(shape).c_str(), g, w, dist.c_str(), ratio.c_str());
    detail = buf;
  }
  record(bad == 0, ctx, detail, known);
}

// |got - want| <= atol_i + rtol |want| for every element (NaN on either side fails); a
// failure names the worst element. `report`: also print the worst ratio when it passes.
template <class W>
inline void check_close(const std::string& ctx, const std::vector<float>& got,
                        const std::vector<W>& want, const std::vector<double>& atol, double rtol,
                        const std::vector<int64_t>& shape, const char* known = nullptr,
                        bool report = false) {
  int64_t bad = 0, worst = -1;
  double worst_ratio = 0, max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = atol[i] + rtol * std::fabs(static_cast<double>(want[i]));
    const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    const double ratio = std::isnan(got[i]) || std::isnan(static_cast<double>(want[i])) ? INFINITY
                         : d == 0                                                      ? 0
                                                                                       : d / tol;
    if (!(ratio <= 1)) ++bad;
    if (d > max_diff) max_diff = d;
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = static_cast<int64_t>(i);
    }
  }
  std::string detail;
  if (bad) {
    const double w = static_cast<double>(want[worst]);
    detail = fmt("%" PRId64 " of %zu outside tolerance; worst at %s of shape %s: got %.9g, want "
                 "%.9g, |diff| %.3g, tolerance %.3g (ratio %.3g)",
                 bad, want.size(), unravel(worst, shape).c_str(), shape_str(shape).c_str(),
                 got[worst], w, std::fabs(got[worst] - w), atol[worst] + rtol * std::fabs(w), worst_ratio);
  } else if (report) {
    std::printf("  ok  %-58s max |diff| %.3g, worst ratio to tolerance %.3g\n", ctx.c_str(),
                max_diff, worst_ratio);
  }
  record(bad == 0, ctx, detail, known);
}
template <class W>
inline void check_close(const std::string& ctx, const std::vector<float>& got,
                        const std::vector<W>& want, double atol, double rtol,
                        const std::vector<int64_t>& shape, const char* known = nullptr,
                        bool report = false) {
  check_close(ctx, got, want, std::vector<double>(want.size(), atol), rtol, shape, known, report);
}

inline void check_bytes(const std::string& ctx, const std::vector<uint8_t>& got,
                 const std::vector<uint8_t>& want, const std::vector<int64_t>& shape,
                 const char* known = nullptr) {
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i] && bad++ == 0) first = static_cast<int64_t>(i);
  std::string detail;
  if (bad)
    detail = std::to_string(bad) + " of " + std::to_string(want.size()) +
             " differ; first at index " + std::to_string(first) + " = " +
             unravel(first, shape) + " of shape " + shape_str(shape) + " (got " +
             std::to_string(got[first]) + ", want " + std::to_string(want[first]) + ")";
  record(bad == 0, ctx, detail, known);
}

// What an op call ended in: normally, or with a typed error.
struct Outcome {
  bool threw = false;
  ErrorKind kind = ErrorKind::kInternal;
  std::string msg;
};
inline Outcome run_op(const std::function<void()>& fn) {
  Outcome o;
  try {
    fn();
  } catch (const Error& e) {
    o.threw = true;
    o.kind = e.kind;
    o.msg = e.what();
  } catch (const std::exception& e) {
    o.threw = true;
    o.kind = ErrorKind::kInternal;
    o.msg = std::string("non-sr3d exception: ") + e.what();
  }
  return o;
}
inline const char* kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInvalidArgument: return "kInvalidArgument";
    case ErrorKind::kCuda: return "kCuda";
    case ErrorKind::kInternal: return "kInternal";
    case ErrorKind::kCudaOutOfMemory: return "kCudaOutOfMemory";
  }
  return "?";
}
// Both threw the same kind (true: nothing more to compare), or neither (false).
inline bool same_outcome(const std::string& ctx, const Outcome& got, const Outcome& want) {
  if (!got.threw && !want.threw) return false;
  std::string detail;
  if (got.threw != want.threw)
    detail = want.threw ? "expected " + std::string(kind_name(want.kind)) + " (" + want.msg +
                              ") but it returned normally"
                        : "threw " + std::string(kind_name(got.kind)) + ": " + got.msg;
  else if (got.kind != want.kind)
    detail = std::string("threw ") + kind_name(got.kind) + " instead of " + kind_name(want.kind) +
             ": " + got.msg;
  record(detail.empty(), ctx + " error", detail, nullptr);
  return true;
}

inline bool begin_case(const std::string& name) {
  if (!g_filter.empty() && name.find(g_filter) == std::string::npos) return false;
  ++g_tally.cases;
  std::printf("%s\n", name.c_str());
  return true;
}

inline void expect_error(const std::string& name, ErrorKind kind, const std::function<void()>& fn) {
  if (!begin_case(name)) return;
  Outcome o = run_op(fn);
  std::string detail;
  if (!o.threw) detail = std::string("expected ") + kind_name(kind) + ", returned normally";
  else if (o.kind != kind) detail = std::string("threw ") + kind_name(o.kind) + ": " + o.msg;
  else std::printf("  ok: %s\n", o.msg.c_str());
  record(detail.empty(), name, detail, nullptr);
}

// ---- inputs ----------------------------------------------------------------------------
struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(gen);
  }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen);
  }
  bool chance(double p) { return uniform(0, 1) < p; }
};

// n floats uniform in [lo, hi) from Rng(seed).
inline std::vector<float> uniform_floats(int64_t n, uint64_t seed, double lo = -1, double hi = 1) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(r.uniform(lo, hi));
  return v;
}

// ---- benchmarks ----------------------------------------------------------------------
struct BenchRow {
  std::string op, shape, device;
  int threads = 0;  // CPU threads; 0 for GPU rows
  double median_ms = 0, bytes = 0, gbps = 0, peak_gbps = 0, pct_peak = 0;
  bool in_cache = false;
};

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// >= 20 timed runs after 3 warm-ups, more for short ops (until ~0.25 s), at most 2000.
inline double cpu_median_ms(const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> ms;
  double total = 0;
  while (ms.size() < 20 || (total < 250 && ms.size() < 2000)) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ms.push_back(t);
    total += t;
  }
  return median(ms);
}

inline BenchRow make_row(const std::string& op, const std::string& shape, const std::string& device,
                  int threads, double ms, double bytes, double peak, double cache_bytes) {
  BenchRow r;
  r.op = op;
  r.shape = shape;
  r.device = device;
  r.threads = threads;
  r.median_ms = ms;
  r.bytes = bytes;
  r.gbps = bytes / (ms * 1e-3) / 1e9;
  r.peak_gbps = peak;
  r.pct_peak = peak > 0 ? 100.0 * r.gbps / peak : 0;
  r.in_cache = bytes < cache_bytes;
  return r;
}

// STREAM triad a = b + s*c over 3 x 64 MiB: 2 reads + 1 write = 12 B per element.
inline double cpu_triad_gbps() {
  const int64_t n = (64LL << 20) / 4;
  std::vector<float> a(n), b(n), c(n);
  sr3d::parallel_for(n, sr3d::cpu_threads(), [&](int, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) { a[i] = 0.5f; b[i] = 1.0f + i % 7; c[i] = 2.0f + i % 5; }
  });
  const float s = 1.5f;
  double ms = cpu_median_ms([&] {
    sr3d::parallel_for(n, sr3d::cpu_threads(), [&](int, int64_t lo, int64_t hi) {
      float* __restrict pa = a.data();
      const float* __restrict pb = b.data();
      const float* __restrict pc = c.data();
      for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
  });
  return 3.0 * 4 * n / (ms * 1e-3) / 1e9;
}

// The CPU peak row every CPU bench starts with: the triad on all threads.
constexpr double kCpuCacheBytes = 32.0 * (1 << 20);  // last-level cache of the reference machine
inline double measure_cpu_peak(std::vector<BenchRow>& rows) {
  const int thr = sr3d::cpu_threads();
  std::fprintf(stderr, "measuring the CPU triad peak (%d threads)...\n", thr);
  const double peak = cpu_triad_gbps();
  rows.push_back(make_row("triad", "3x64MiB", "cpu", thr, 3.0 * (64 << 20) / (peak * 1e9) * 1e3,
                          3.0 * (64 << 20), peak, kCpuCacheBytes));
  return peak;
}

inline void print_table(const std::vector<BenchRow>& rows) {
  std::printf("%-18s %-34s %-8s %4s %10s %9s %9s %7s  %s\n", "op", "shape", "device", "thr",
              "median ms", "MB", "GB/s", "%peak", "note");
  for (const BenchRow& r : rows) {
    std::string dev = r.device.substr(0, r.device.find(' '));
    std::printf("%-18s %-34s %-8s %4d %10.3f %9.1f %9.1f %6.0f%%  %s\n", r.op.c_str(),
                r.shape.c_str(), dev.c_str(), r.threads, r.median_ms, r.bytes / 1e6, r.gbps,
                r.pct_peak, r.in_cache ? "in cache (measures cache, not DRAM)" : "");
  }
}

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) o += c;
  }
  return o;
}

inline std::string to_json(const std::vector<BenchRow>& rows) {
  std::string out = "[\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const BenchRow& r = rows[i];
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "  {\"op\": \"%s\", \"shape\": \"%s\", \"device\": \"%s\", \"threads\": %d, "
                  "\"medianMs\": %.6g, \"bytes\": %.0f, \"gbps\": %.4g, \"peakGbps\": %.4g, "
                  "\"pctPeak\": %.4g, \"inCache\": %s}%s\n",
                  json_escape(r.op).c_str(), json_escape(r.shape).c_str(),
                  json_escape(r.device).c_str(), r.threads, r.median_ms, r.bytes, r.gbps,
                  r.peak_gbps, r.pct_peak, r.in_cache ? "true" : "false",
                  i + 1 < rows.size() ? "," : "");
    out += buf;
  }
  return out + "]\n";
}

#ifdef SR3D_WITH_CUDA
// Device-resident copy of a host vector.
template <typename T>
inline sr3d::cuda::DeviceBuffer<T> to_device(const std::vector<T>& v) {
  sr3d::cuda::DeviceBuffer<T> d(v.size());
  if (!v.empty())
    SR3D_CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// CUDA-event timing on `stream`: 3 warm-ups, >= 20 runs (more for short ops, ~0.25 s).
inline double gpu_median_ms(cudaStream_t stream, const std::function<void()>& fn) {
  cudaEvent_t start, stop;
  SR3D_CUDA_CHECK(cudaEventCreate(&start));
  SR3D_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) fn();
  SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> ms;
  double total = 0;
  while (ms.size() < 20 || (total < 250 && ms.size() < 2000)) {
    SR3D_CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    SR3D_CUDA_CHECK(cudaEventRecord(stop, stream));
    SR3D_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    SR3D_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
    total += t;
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return median(ms);
}

constexpr double kGpuCacheBytes = 50.0 * (1 << 20);  // H100 L2

// The GPU peak row every GPU bench starts with: a device-to-device copy of 1 GiB
// (read + write = 2 GiB moved), timed on `stream`.
inline double measure_gpu_peak(cudaStream_t stream, const std::string& dev,
                               std::vector<BenchRow>& rows) {
  const size_t bytes = 1ULL << 30;
  sr3d::cuda::DeviceBuffer<uint8_t> a(bytes), b(bytes);
  SR3D_CUDA_CHECK(cudaMemsetAsync(a.get(), 1, bytes, stream));
  double ms = gpu_median_ms(stream, [&] {
    SR3D_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  const double peak = 2.0 * bytes / (ms * 1e-3) / 1e9;
  rows.push_back(make_row("d2d_copy", "1GiB", dev, 0, ms, 2.0 * bytes, peak, kGpuCacheBytes));
  return peak;
}

// The first usable device for GPU bench rows, selected; false (with the reason printed)
// when there is none. `label` receives "cuda:N name".
inline bool bench_cuda_device(std::string* label) {
  std::string why;
  std::vector<sr3d::CudaDeviceInfo> devs = sr3d::cuda_devices(&why);
  if (devs.empty()) {
    std::fprintf(stderr, "no usable CUDA device (%s): GPU rows skipped\n", why.c_str());
    return false;
  }
  sr3d::cuda_set_device(devs[0].index);
  *label = "cuda:" + std::to_string(devs[0].index) + " " + devs[0].name;
  return true;
}
#endif  // SR3D_WITH_CUDA

// ---- main --------------------------------------------------------------------------------
using TestsFn = std::function<void()>;
using BenchFn = std::function<void(const std::string& device, std::vector<BenchRow>& rows)>;

// Test mode: selects the first usable CUDA device (sets g_cuda), runs the cases, prints the
// tally; exit status 1 on any failure or when --filter matched no case.
inline int harness_run_tests(const TestsFn& run_tests) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string why;
  std::vector<sr3d::CudaDeviceInfo> devs = sr3d::cuda_devices(&why);
#ifdef SR3D_WITH_CUDA
  if (devs.empty()) {
    std::printf("CUDA build, no usable CUDA device (%s): skipping the Impl::kCuda comparisons\n",
                why.c_str());
  } else {
    g_cuda = true;
    std::printf("CUDA device %d: %s (sm_%d%d): comparing Impl::kCuda too\n", devs[0].index,
                devs[0].name.c_str(), devs[0].major, devs[0].minor);
    sr3d::cuda_set_device(devs[0].index);  // the first *usable* device, not necessarily 0
  }
#else
  std::printf("CPU-only build: the Impl::kCuda comparisons are skipped\n");
#endif
  std::printf("cpu threads: %d, simd: %s\n", sr3d::cpu_threads(), sr3d::cpu_simd());

  run_tests();

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%d cases, %d checks: %d failed, %d known bugs (xfail), %d xpass; %.1f s\n",
              g_tally.cases, g_tally.checks, g_tally.failed, g_tally.xfail, g_tally.xpass, secs);
  if (g_tally.cases == 0) {
    std::printf("no case matches --filter '%s'\n", g_filter.c_str());
    return 1;
  }
  return g_tally.failed ? 1 : 0;
}

// Bench mode: collects the rows of run_bench and prints them as a table or JSON.
inline int harness_run_bench(const BenchFn& run_bench, bool json, const std::string& json_out,
                             const std::string& device) {
  std::vector<BenchRow> rows;
  run_bench(device, rows);
#ifndef SR3D_WITH_CUDA
  if (device == "cuda") std::fprintf(stderr, "CPU-only build: no GPU rows\n");
#endif
  if (json) std::printf("%s", to_json(rows).c_str());
  else print_table(rows);
  if (!json_out.empty()) {
    FILE* f = std::fopen(json_out.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json_out.c_str());
      return 1;
    }
    std::fputs(to_json(rows).c_str(), f);
    std::fclose(f);
  }
  return 0;
}

inline int harness_main(int argc, char** argv, const TestsFn& run_tests, const BenchFn& run_bench) {
  bool bench = false, json = false;
  std::string json_out, device = "all";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bench") bench = true;
    else if (a == "--json") json = true;
    else if (a == "--json-out" && i + 1 < argc) json_out = argv[++i];
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--filter" && i + 1 < argc) g_filter = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--filter SUBSTR] | --bench [--json] [--json-out FILE] "
                   "[--device cpu|cuda|all]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    return bench ? harness_run_bench(run_bench, json, json_out, device)
                 : harness_run_tests(run_tests);
  } catch (const std::exception& e) {  // a broken harness, not a failed comparison
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace sr3d_test
