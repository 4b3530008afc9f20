#include "../common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sr3d {

void throw_invalid_argument(const std::string& what, const std::string& name,
                            const std::string& received) {
  throw Error(ErrorKind::kInvalidArgument,
              "Expected " + what + " for " + name + " but received " + received);
}

void throw_internal(const std::string& msg) {
  throw Error(ErrorKind::kInternal, "sr3d internal error: " + msg);
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
  return "neon";
#else
  return "scalar";
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

// Workers sleep on a condition variable; a job is a generation number plus a shared
// chunk counter, so any worker (and the caller) can take the next chunk.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // leaked on purpose: no join at static destruction
    return *pool;
  }
  int threads() const { return threads_; }
  void set_threads(int n) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    threads_ = n > 0 ? std::min(n, 256) : default_threads();
    std::lock_guard<std::mutex> lk(mu_);
    while (static_cast<int>(workers_.size()) < threads_ - 1) {
      workers_.emplace_back([this] { worker(); });
      workers_.back().detach();
    }
  }

  void run(int64_t n, int chunks, const std::function<void(int, int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (chunks <= 0) chunks = threads_;
    chunks = static_cast<int>(std::min<int64_t>(chunks, n));
    if (chunks <= 1 || threads_ <= 1 || in_pool_) {
      for (int c = 0; c < chunks; ++c) fn(c, n * c / chunks, n * (c + 1) / chunks);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      chunks_ = chunks;
      next_.store(0);
      done_ = 0;
      error_ = nullptr;
      slots_ = std::min(threads_ - 1, chunks - 1);
      active_ = 0;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return done_ == chunks_ && active_ == 0; });
    slots_ = 0;  // late wakers must not join a finished job
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  Pool() { set_threads(0); }

  void work() {
    for (;;) {
      int c = next_.fetch_add(1);
      if (c >= chunks_) return;
      try {
        if (!error_) (*fn_)(c, n_ * c / chunks_, n_ * (c + 1) / chunks_);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(mu_);
      if (++done_ == chunks_) done_cv_.notify_all();
    }
  }

  void worker() {
    in_pool_ = true;
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (slots_ <= 0) continue;  // enough helpers already joined this job
      --slots_;
      ++active_;
      lk.unlock();
      work();
      lk.lock();
      if (--active_ == 0) done_cv_.notify_all();
    }
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int, int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  std::atomic<int> next_{0};
  int done_ = 0;
  int active_ = 0;
  int slots_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
  static thread_local bool in_pool_;
};

thread_local bool Pool::in_pool_ = false;

}  // namespace

int cpu_threads() { return Pool::get().threads(); }
void set_cpu_threads(int n) { Pool::get().set_threads(n); }
void parallel_for(int64_t n, int chunks,
                  const std::function<void(int, int64_t, int64_t)>& fn) {
  Pool::get().run(n, chunks, fn);
}

}  // namespace sr3d
