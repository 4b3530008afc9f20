// The CPU thread pool (kernels/cpu/common.cc) under stress: every index of many tiny parallel
// regions runs exactly once, nested calls run serially on the calling thread, the first
// exception propagates and the pool keeps working, long chunks and idle gaps (workers and the
// caller sleeping), and several external threads calling at once; for 1-8 threads.
// Benchmark: the cost of one small parallel region (the decode path runs hundreds per token).
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

using namespace sr3d;
using namespace sr3d_test;

static void check(bool ok, const std::string& ctx, const std::string& detail) { record(ok, ctx, detail, nullptr); }

static void run_tests() {
  for (int thr : {1, 2, 4, 8, 3}) {
    const std::string t = "threads=" + std::to_string(thr);
    set_cpu_threads(thr);
    if (begin_case("pool/" + t + " every index once over 20000 tiny regions")) {
      check(cpu_threads() == thr, t, "cpu_threads() after set_cpu_threads");
      int bad = 0;
      for (int it = 0; it < 20000; ++it) {
        const int64_t n = 1 + it % 37;
        const int chunks = it % 9;
        std::vector<std::atomic<int>> hit(n);
        parallel_for(n, chunks, [&](int, int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) hit[i]++; });
        for (int64_t i = 0; i < n; ++i) bad += hit[i] != 1;
      }
      check(bad == 0, t, std::to_string(bad) + " indices not run exactly once");
    }
    if (begin_case("pool/" + t + " nested calls run serially on the caller")) {
      std::atomic<int> total{0}, other{0};
      parallel_for(16, 8, [&](int, int64_t, int64_t) {
        const auto me = std::this_thread::get_id();
        parallel_for(100, 4, [&](int, int64_t b2, int64_t e2) {
          if (std::this_thread::get_id() != me) other++;
          total += int(e2 - b2);
        });
      });
      check(other == 0, t, std::to_string(other.load()) + " nested chunks ran on another thread");
      check(total == 800, t, "nested total " + std::to_string(total.load()) + " != 800");
    }
    if (begin_case("pool/" + t + " exceptions propagate and the pool keeps working")) {
      int missed = 0;
      for (int k = 0; k < 200; ++k) {
        bool caught = false;
        try {
          parallel_for(64, 8, [&](int c, int64_t, int64_t) { if (c == k % 8) throw std::runtime_error("boom"); });
        } catch (const std::runtime_error& e) {
          caught = std::string(e.what()) == "boom";
        }
        missed += !caught;
      }
      check(missed == 0, t, std::to_string(missed) + " of 200 exceptions not rethrown");
      std::atomic<int64_t> s{0};
      parallel_for(1000, 0, [&](int, int64_t b, int64_t e) { s += e - b; });
      check(s == 1000, t, "region after exceptions covered " + std::to_string(s.load()));
    }
    if (begin_case("pool/" + t + " long chunks and idle gaps")) {
      int bad = 0;
      for (int k = 0; k < 5; ++k) {
        std::atomic<int64_t> s{0};
        parallel_for(8, 8, [&](int c, int64_t, int64_t) {
          std::this_thread::sleep_for(std::chrono::milliseconds(c == 0 ? 1 : 3));
          s += c;
        });
        bad += s != 28;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      check(bad == 0, t, std::to_string(bad) + " regions lost a chunk");
    }
    if (begin_case("pool/" + t + " three external callers at once")) {
      std::vector<std::thread> ts;
      std::atomic<int64_t> sum{0};
      for (int k = 0; k < 3; ++k) {
        ts.emplace_back([&] {
          for (int i = 0; i < 3000; ++i) parallel_for(10, 5, [&](int, int64_t b, int64_t e) { sum += e - b; });
        });
      }
      for (auto& th : ts) th.join();
      check(sum == 3 * 3000 * 10, t, "covered " + std::to_string(sum.load()) + " of 90000");
    }
  }
  set_cpu_threads(0);
}

static void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device == "cuda") return;
  std::vector<float> v(4096, 1.f);
  const double ms = cpu_median_ms([&] {
    for (int r = 0; r < 100; ++r) {
      parallel_for(static_cast<int64_t>(v.size()), 0, [&](int, int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) v[i] = v[i] * 1.0001f;
      });
    }
  });
  rows.push_back(make_row("parallel_for x100", "4096 floats each (region overhead)", "cpu", cpu_threads(), ms, 100.0 * 2 * 4 * 4096, 0, 1e18));
}

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
