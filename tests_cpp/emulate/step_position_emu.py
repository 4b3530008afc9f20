#!/usr/bin/env python3
"""Runs the CUDA RoPE + KV-cache and attention kernels on the CPU, without a GPU, with the decode
step's position passed as an argument and read from memory (the CUDA-graph decode's path).

The kernels' source is taken verbatim from kernels/cuda/rope.cu (rope_qkv_cache_kernel),
kernels/cuda/attention.cu (split_plan, attention_kernel, attention_combine_kernel),
kernels/cuda/nn_common.cuh (warp_sum / warp_max) and nn.cuh (AttentionArgs), compiled with g++
under a small shim of the CUDA execution model (one std::thread per CUDA thread, a barrier for
__syncthreads, warp shuffles through a per-warp barrier). For each position the two launches
must agree bit for bit: the plain one (arguments, grid sized for the real keys, as
attention_dev launches it) and the graph's (q_offset_dev / pos0_dev, the grid sized for the
engine's KV-length bucket: 128 keys, then powers of two), across the bucket boundaries and with
and without key splits; both are also checked against a float64 reference (|got - ref| <= 1e-5
max |v|). It catches a split plan or a skipped block that differs between the two paths before
a device run; the real compiler and memory model are only exercised on a GPU
(tests_cpp/nn_cuda_tests.cc, "engine/cuda graph decode"). Usage:
python3 tests_cpp/emulate/step_position_emu.py (needs g++ with C++20; under a minute).
"""
import sys

from cuda_shim import PRELUDE, RUN_GRID, between, compile_and_run, source


SHIM = PRELUDE + r'''
using std::min;
std::vector<float> g_smem;
namespace sr3d { namespace cuda {
'''

DRIVER = RUN_GRID + r'''
constexpr int64_t kSms = 4;  // a small "GPU": decode splits its keys over up to 8 x 4 / heads blocks

// The engine's KV-length bucket (engine_cuda.cu decode_bucket).
int64_t bucket_of(int64_t pos, int64_t max_context) {
  int64_t cap = 128;
  while (cap < pos + 1) cap *= 2;
  return std::min(cap, max_context);
}

// attention_dev's launch (host half) of a: plan, grid, attention_kernel, combine.
void attention(const AttentionArgs& a) {
  AttnParams p;
  p.a = a;
  const int64_t qtiles = (a.nq + kQT - 1) / kQT;
  const int64_t kmax = a.causal ? std::min(a.nk, a.q_offset + a.nq) : a.nk;
  const int64_t base = qtiles * a.hq * a.batch;
  const SplitPlan plan = split_plan(kmax, base, kSms);
  p.splits = plan.splits;
  p.keys_per_split = plan.keys_per_split;
  p.base = base;
  p.sms = kSms;
  std::vector<float> ws;
  if (p.splits > 1) {
    const int64_t slots = a.batch * p.splits * a.nq * a.hq;
    ws.assign(slots * (a.d + 2), NAN);
    p.part_acc = ws.data();
    p.part_ml = ws.data() + slots * a.d;
  } else {
    p.part_acc = p.part_ml = nullptr;
  }
  g_smem.assign(kQT * a.d + kKT * (a.d + 1) + kKT * a.d, NAN);
  run_grid(qtiles, a.hq, a.batch * p.splits, kAttnWarps * 32, [&] { attention_kernel<2>(p); });  // d <= 64
  if (p.splits > 1) run_grid(a.batch * a.nq * a.hq, 1, 1, 128, [&] { attention_combine_kernel(p); });
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

// Decode-style attention at position pos (nq queries ending at pos + nq - 1) over a cache of
// max_context rows: plain vs the graph's launch, and both vs float64.
void attention_case(int64_t pos, int64_t nq, int64_t hq, int64_t hkv, int64_t d, int64_t max_context,
                    uint64_t seed) {
  std::mt19937_64 r(seed);
  auto uni = [&] { return static_cast<float>((static_cast<int64_t>(r() % 2001) - 1000) * 1e-3); };
  std::vector<float> q(nq * hq * d), k(max_context * hkv * d), v(max_context * hkv * d);
  for (auto& x : q) x = uni();
  for (auto& x : k) x = uni();
  for (auto& x : v) x = uni();
  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  auto args = [&](float* out) {
    AttentionArgs a;
    a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = out;
    a.q_stride = a.out_stride = hq * d;
    a.kv_stride = hkv * d;
    a.nq = nq; a.hq = hq; a.hkv = hkv; a.d = d;
    a.scale = scale;
    a.causal = true;
    return a;
  };
  std::vector<float> plain(nq * hq * d, NAN), graph(nq * hq * d, NAN);
  AttentionArgs a = args(plain.data());
  a.q_offset = pos;
  a.nk = pos + nq;
  attention(a);
  const int64_t cap = bucket_of(pos + nq - 1, max_context);
  const int32_t pos_dev = static_cast<int32_t>(pos);
  AttentionArgs g = args(graph.data());
  g.q_offset = cap - nq;  // the bound the grid is sized for
  g.nk = cap;
  g.q_offset_dev = &pos_dev;
  attention(g);
  double worst = 0, mag = 0;
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t kh = h / (hq / hkv), last = pos + i;
      std::vector<double> s(last + 1);
      double m = -1e300, l = 0;
      for (int64_t j = 0; j <= last; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += (double)q[(i * hq + h) * d + c] * k[(j * hkv + kh) * d + c];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      for (int64_t j = 0; j <= last; ++j) l += std::exp(s[j] - m);
      for (int64_t c = 0; c < d; ++c) {
        double o = 0;
        for (int64_t j = 0; j <= last; ++j) o += std::exp(s[j] - m) / l * v[(j * hkv + kh) * d + c];
        mag = std::max(mag, std::fabs(o));
        const double e = std::fabs(plain[(i * hq + h) * d + c] - o);
        if (!(e <= worst)) worst = e;
      }
    }
  const SplitPlan used = split_plan(pos + nq, (nq + kQT - 1) / kQT * hq, kSms);
  const SplitPlan grid = split_plan(cap, (nq + kQT - 1) / kQT * hq, kSms);
  const bool bits = same_bits(plain, graph), close = worst <= 1e-5 * std::max(mag, 1e-3);
  if (!bits || !close) ++fails;
  std::printf("%s attention pos %4ld nq %ld hq %ld/%ld d %ld: bucket %4ld, splits %2ld of a %2ld-split grid; "
              "graph == plain bitwise %d, |plain - float64| %.3g (max |o| %.3g)\n",
              bits && close ? "ok  " : "FAIL", (long)pos, (long)nq, (long)hq, (long)hkv, (long)d, (long)cap,
              (long)used.splits, (long)grid.splits, bits, worst, mag);
}

// RoPE + cache write of n rows at pos: the argument vs *pos0_dev, every output bit for bit.
void rope_case(int64_t pos, int64_t n, int64_t hq, int64_t hkv, int64_t d, uint64_t seed) {
  std::mt19937_64 r(seed);
  const int64_t rows = pos + n, width = (hq + 2 * hkv) * d;
  std::vector<float> qkv(n * width), inv(d / 2);
  for (auto& x : qkv) x = static_cast<float>((static_cast<int64_t>(r() % 2001) - 1000) * 1e-3);
  for (int64_t i = 0; i < d / 2; ++i) inv[i] = static_cast<float>(std::pow(1e6, -2.0 * i / d));
  auto run = [&](const int32_t* pos_dev, std::vector<float>& x, std::vector<float>& kc, std::vector<float>& vc) {
    x = qkv;
    kc.assign(rows * hkv * d, NAN);
    vc.assign(rows * hkv * d, NAN);
    run_grid(1, 1, 1, 1, [&] {
      rope_qkv_cache_kernel(x.data(), n, hq, hkv, d, pos_dev ? 0 : pos, pos_dev, inv.data(), kc.data(), vc.data());
    });
  };
  std::vector<float> x1, k1, v1, x2, k2, v2;
  run(nullptr, x1, k1, v1);
  const int32_t pos_dev = static_cast<int32_t>(pos);
  run(&pos_dev, x2, k2, v2);
  // The rows the step owns were written (the rest stay NaN in both).
  bool written = true;
  for (int64_t i = pos * hkv * d; i < rows * hkv * d; ++i) written = written && !std::isnan(k1[i]) && !std::isnan(v1[i]);
  const bool ok = same_bits(x1, x2) && same_bits(k1, k2) && same_bits(v1, v2) && written;
  if (!ok) ++fails;
  std::printf("%s rope + cache pos %4ld n %ld hq %ld/%ld d %ld: argument == device position bitwise\n",
              ok ? "ok  " : "FAIL", (long)pos, (long)n, (long)hq, (long)hkv, (long)d);
}

}}  // namespace sr3d::cuda

int main() {
  using namespace sr3d::cuda;
  // hq 2 on 4 "SMs": up to 16 key splits, so the split count moves with the position.
  const int64_t positions[] = {0, 1, 63, 127, 128, 129, 200, 255, 256, 300, 511, 512, 700, 1000, 1099};
  uint64_t seed = 1;
  for (int64_t pos : positions) attention_case(pos, 1, 2, 1, 24, 1100, seed++);
  // Saturated splits (16) in a bucket twice the keys: the keys per split differ from the grid's.
  for (int64_t pos : {int64_t{1500}, int64_t{2099}}) attention_case(pos, 1, 2, 1, 24, 2100, seed++);
  for (int64_t pos : {int64_t{126}, int64_t{130}, int64_t{509}}) attention_case(pos, 3, 4, 2, 16, 600, seed++);
  attention_case(700, 1, 8, 8, 32, 1024, seed++);  // base 8 = 2 x SMs: never split
  for (int64_t pos : {int64_t{0}, int64_t{5}, int64_t{128}, int64_t{539}}) rope_case(pos, 1, 4, 2, 10, seed++);
  rope_case(77, 3, 14, 2, 64, seed++);
  std::printf("%d failed\n", fails);
  return fails != 0;
}
'''


def main():
    att, rope = source('kernels/cuda/attention.cu'), source('kernels/cuda/rope.cu')
    common, nn = source('kernels/cuda/nn_common.cuh'), source('kernels/cuda/nn.cuh')
    kernels = between(att, 'constexpr int kAttnWarps', 'template <int DPL>\nvoid attention_launch')
    kernels = kernels.replace('extern __shared__ float smem[];', 'float* smem = g_smem.data();')
    return compile_and_run(SHIM
                           + between(nn, 'struct AttentionArgs {', '\n};') + '\n};\n'
                           + between(common, '__device__ __forceinline__ float warp_sum', '// The end of a warp-per-row GEMV')
                           + kernels
                           + between(rope, '// HF rotate_half', '}  // namespace')
                           + DRIVER)


if __name__ == '__main__':
    sys.exit(main())
