#include "../common.h"
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace sr3d {

void throw_invalid_argument(const std::string& what, const std::string& name,
                            const std::string& received) {
  throw Error(ErrorKind::kInvalidArgument,
              "Expected " + what + " for " + name + " but received " + received);
}

void throw_internal(const std::string& msg) {
  throw Error(ErrorKind::kInternal, "sr3d internal error: " + msg);
}

void throw_internal_argument(const std::string& what, const std::string& name,
                             const std::string& received, const std::string& owner) {
  throw Error(ErrorKind::kInternal, "sr3d internal error: Expected " + what + " for " + name +
                                        " but received " + received + ". " + owner +
                                        " checks this before the native call, so this is a bug in "
                                        "sr3d: please report it");
}

void throw_cpu_only_build() {
  throw_invalid_argument("'cpu' (this sr3d binary was built without CUDA)", "device", "'cuda'");
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "float32";
    case DType::kUint16: return "uint16";
    case DType::kUint8: return "uint8";
  }
  return "unknown";
}

const char* cpu_simd() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "sse2";
#elif defined(__aarch64__)
  return cpu_neon() ? "neon" : "portable";
#else
  return "scalar";
#endif
}

#if defined(__aarch64__) && defined(__linux__)
namespace {
// The kernel's hwcaps (asm/hwcap.h), spelled out: older sysroots lack the newer names.
constexpr unsigned long kHwcapAsimd = 1UL << 1, kHwcapFphp = 1UL << 9, kHwcapAsimdhp = 1UL << 10,
                        kHwcapAsimddp = 1UL << 20, kHwcapSve = 1UL << 22;
constexpr unsigned long kHwcap2Bf16 = 1UL << 14;
}  // namespace
#endif

std::vector<std::string> cpu_features() {
  std::vector<std::string> f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse2")) f.push_back("sse2");  // the builtin takes literals only
  if (__builtin_cpu_supports("avx2")) f.push_back("avx2");
  if (__builtin_cpu_supports("fma")) f.push_back("fma");
  if (__builtin_cpu_supports("avx512f")) f.push_back("avx512f");
  if (__builtin_cpu_supports("avx512vl")) f.push_back("avx512vl");
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  if (hw & kHwcapAsimd) f.push_back("asimd");
  if ((hw & kHwcapFphp) && (hw & kHwcapAsimdhp)) f.push_back("fp16");
  if (hw & kHwcapAsimddp) f.push_back("dotprod");
  if (hw2 & kHwcap2Bf16) f.push_back("bf16");
  if (hw & kHwcapSve) f.push_back("sve");
#elif defined(__aarch64__)
  f.push_back("asimd");  // Advanced SIMD is part of every AArch64 CPU that runs sr3d
#endif
  return f;
}

bool cpu_neon() {
#if defined(__aarch64__)
  static const bool on = [] {
    const char* cap = std::getenv("SR3D_CPU_ISA");
    if (cap && std::string(cap) == "portable") return false;
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & kHwcapAsimd) != 0;
#else
    return true;
#endif
  }();
  return on;
#else
  return false;
#endif
}

namespace {

int default_threads() {
  if (const char* env = std::getenv("SR3D_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return std::min(n, 256);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(std::min(hc, 256u)) : 1;
}

// Spin-then-sleep pool. A decode step runs ~120 parallel regions of a few to a few hundred
// microseconds each, so waking workers through a condition variable every time (tens of µs
// with many threads) cost more than the work. Workers that finish a job spin on the job
// word (with a pause instruction) for kSpinUs before sleeping on the condition variable; the
// caller publishes a job with one atomic store and only takes the mutex to notify when a
// worker is actually asleep. Chunks are taken from an atomic counter; completion is an atomic
// count the caller spins on (then sleeps on, for long chunks).
//
// Job lifetime: state_ = 2 * job + 1 while a job is open, 2 * job once closed. A worker joins
// by incrementing active_ and then re-checking state_; the caller closes the job (after all
// chunks are done) and waits for active_ == 0 before returning, so no worker can read the job
// fields (which live for one run() call) after they change. Both sides use seq_cst, so either
// the caller sees the worker's increment or the worker sees the closed state.
constexpr int64_t kSpinUs = 100;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Spins until pred() holds or spin_us elapse; returns pred()'s last value.
template <class Pred>
bool spin_until(Pred pred, int64_t spin_us) {
  if (pred()) return true;
  const int64_t t0 = now_us();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      if (pred()) return true;
    }
    if (now_us() - t0 >= spin_us) return pred();
  }
}

class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // leaked on purpose: no join at static destruction
    return *pool;
  }
  int threads() const { return threads_.load(std::memory_order_relaxed); }
  void set_threads(int n) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    const int t = n > 0 ? std::min(n, 256) : default_threads();
    threads_.store(t);
    while (static_cast<int>(workers_) < t - 1) {
      const int id = workers_++;
      std::thread([this, id] { worker(id); }).detach();
    }
  }

  void run(int64_t n, int chunks, const std::function<void(int, int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    const int threads = this->threads();
    if (chunks <= 0) chunks = threads;
    chunks = static_cast<int>(std::min<int64_t>(chunks, n));
    if (chunks <= 1 || threads <= 1 || in_pool_) {
      for (int c = 0; c < chunks; ++c) fn(c, n * c / chunks, n * (c + 1) / chunks);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    in_pool_ = true;  // nested calls from the caller's own chunks run serially too
    fn_ = &fn;
    n_ = n;
    chunks_ = chunks;
    helpers_ = std::min(threads - 1, chunks - 1);
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    const uint64_t open = state_.load(std::memory_order_relaxed) + 1;  // even -> odd
    state_.store(open);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
    work();
    // Wait for the chunks other threads took: spin, then sleep until the last one is done.
    if (!spin_until([&] { return done_.load(std::memory_order_acquire) == chunks_; }, kSpinUs)) {
      caller_waiting_.store(true);
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return done_.load() == chunks_; });
      caller_waiting_.store(false);
    }
    state_.store(open + 1);  // close: late workers back off without touching the job
    while (active_.load() != 0) std::this_thread::yield();
    fn_ = nullptr;
    in_pool_ = false;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  Pool() { set_threads(0); }

  void work() {
    for (;;) {
      const int c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks_) return;
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          (*fn_)(c, n_ * c / chunks_, n_ * (c + 1) / chunks_);
        } catch (...) {
          std::lock_guard<std::mutex> lk(err_mu_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      if (done_.fetch_add(1) + 1 == chunks_ && caller_waiting_.load()) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_all();
      }
    }
  }

  void worker(int id) {
    in_pool_ = true;
    uint64_t seen = state_.load();
    for (;;) {
      auto fresh = [&] {
        const uint64_t s = state_.load(std::memory_order_acquire);
        return (s & 1) && s != seen;
      };
      if (!spin_until(fresh, kSpinUs)) {
        sleepers_.fetch_add(1);
        {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, fresh);
        }
        sleepers_.fetch_sub(1);
      }
      const uint64_t s = state_.load();
      if (!(s & 1) || s == seen) continue;
      seen = s;
      active_.fetch_add(1);
      if (state_.load() == s && id < helpers_) work();
      active_.fetch_sub(1);
    }
  }

  std::atomic<int> threads_{1};
  int workers_ = 0;
  std::mutex run_mu_, mu_, err_mu_;
  std::condition_variable cv_, done_cv_;
  // The current job (written by the caller before it opens state_).
  const std::function<void(int, int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  int helpers_ = 0;
  std::exception_ptr error_;
  std::atomic<uint64_t> state_{0};
  std::atomic<int> next_{0}, done_{0}, active_{0}, sleepers_{0};
  std::atomic<bool> failed_{false}, caller_waiting_{false};
  static thread_local bool in_pool_;
};

thread_local bool Pool::in_pool_ = false;

}  // namespace

namespace cpu {
int x86_isa() {
  static const int isa = [] {
#if defined(__x86_64__) && defined(__GNUC__)
    const char* cap = std::getenv("SR3D_CPU_ISA");
    const std::string want = cap ? cap : "";
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    if (want.empty() && avx2 && avx512) return 2;
    if ((want.empty() || want == "avx2") && avx2) return 1;
#endif
    return 0;
  }();
  return isa;
}
}  // namespace cpu

int cpu_threads() { return Pool::get().threads(); }
void set_cpu_threads(int n) { Pool::get().set_threads(n); }
void parallel_for(int64_t n, int chunks,
                  const std::function<void(int, int64_t, int64_t)>& fn) {
  Pool::get().run(n, chunks, fn);
}

}  // namespace sr3d
