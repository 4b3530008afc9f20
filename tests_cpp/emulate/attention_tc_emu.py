#!/usr/bin/env python3
"""Runs the tensor-core attention (kernels/cuda/attention_tc.cu) on the CPU, without a GPU,
against a float64 reference.

The kernel's source is taken verbatim from kernels/cuda/attention_tc.cu (from `constexpr int
kAtWarps` to the host side; AttentionArgs from kernels/cuda/nn.cuh) and compiled with g++ under
gemm_tc_emu.py's shim (one std::thread per CUDA thread, mma_bf16_16816 emulated from the PTX
ISA's documented m16n8k16 fragment layout through a per-warp barrier) plus __shfl_xor_sync
through the same per-warp barrier. The reference is softmax(scale q k^T) v in float64 of the
bf16-rounded q, k, v (the kernel rounds P to bf16 too: that and float32 accumulation are what
the tolerance covers): |got - ref| <= 2^-7 max_j |v_j| + 1e-5, outputs poisoned with NaN first.
Cases: SigLIP-like (d 72 padded to 80, non-causal, batch 2, GQA 2:1) and prefill-like (d 128,
causal with a q_offset, GQA 4:2), sizes not multiples of the 64-query / 64-key tiles. It says
nothing about speed, the real memory model or the compiled code (tests_cpp/nn_cuda_tests.cc,
attention_tc cases, run those on a GPU). Usage: python3 tests_cpp/emulate/attention_tc_emu.py
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cuda_shim import RUN_GRID, between, compile_and_run, source  # noqa: E402
from gemm_tc_emu import SHIM  # noqa: E402

SHUFFLE = r'''
using std::min;
'''

DRIVER = RUN_GRID + r'''
template <int DP>
void one(int64_t batch, int64_t nq, int64_t nk, int64_t hq, int64_t hkv, int64_t d, bool causal,
         int64_t q_offset, uint64_t seed) {
  std::mt19937_64 r(seed);
  auto uni = [&] { return ((int64_t)(r() % 200001) - 100000) * 1e-5; };
  // Fused-row layouts: q rows of hq * d + 8 floats, k / v rows of hkv * d + 4 (strides > widths).
  const int64_t qs = hq * d + 8, ks = hkv * d + 4, os = hq * d + 3;
  std::vector<float> q(batch * nq * qs), k(batch * nk * ks), v(batch * nk * ks);
  for (auto& x : q) x = 2 * uni();
  for (auto& x : k) x = 2 * uni();
  for (auto& x : v) x = uni();
  std::vector<float> out(batch * nq * os, NAN);
  AttentionArgs a;
  a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = out.data();
  a.q_stride = qs; a.kv_stride = ks; a.out_stride = os;
  a.q_bstride = nq * qs; a.kv_bstride = nk * ks; a.out_bstride = nq * os;
  a.batch = batch; a.nq = nq; a.nk = nk; a.hq = hq; a.hkv = hkv; a.d = d;
  a.scale = 1.f / std::sqrt((float)d);
  a.causal = causal; a.q_offset = q_offset;
  run_grid((nq + kAtQ - 1) / kAtQ, hq, batch, kAtThreads, [&] { attention_tc_kernel<DP>(a); });
  auto bf = [](float x) { return (double)bf16_to_float(bf16_rn(x)); };
  double worst = 0;
  int pad_ok = 1;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t kvh = h / (hq / hkv);
      for (int64_t i = 0; i < nq; ++i) {
        const int64_t kend = causal ? std::min(nk, q_offset + i + 1) : nk;
        std::vector<double> sc(kend);
        double mx = -1e300;
        for (int64_t j = 0; j < kend; ++j) {
          double s = 0;
          for (int64_t c = 0; c < d; ++c)
            s += bf(q[b * nq * qs + i * qs + h * d + c]) * bf(k[b * nk * ks + j * ks + kvh * d + c]);
          sc[j] = s * a.scale;
          mx = std::max(mx, sc[j]);
        }
        double den = 0;
        for (int64_t j = 0; j < kend; ++j) den += (sc[j] = std::exp(sc[j] - mx));
        for (int64_t c = 0; c < d; ++c) {
          double num = 0, vmax = 0;
          for (int64_t j = 0; j < kend; ++j) {
            const double vv = bf(v[b * nk * ks + j * ks + kvh * d + c]);
            num += sc[j] * vv;
            vmax = std::max(vmax, std::fabs(vv));
          }
          const double ref = num / den, got = out[b * nq * os + i * os + h * d + c];
          const double e = std::fabs(got - ref) / (std::ldexp(vmax, -7) + 1e-5);
          if (!(e <= worst)) worst = e;
        }
      }
      // Between heads' rows nothing else may be written: the 3 pad floats of each out row.
    }
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t c = hq * d; c < os; ++c) pad_ok &= std::isnan(out[b * nq * os + i * os + c]) ? 1 : 0;
  const bool ok = worst <= 1 && pad_ok;
  if (!ok) ++fails;
  std::printf("%s DP %3d batch %ld nq %3ld nk %3ld hq %ld hkv %ld d %3ld causal %d q_offset %ld: worst ratio to tolerance %.3g%s\n",
              ok ? "ok  " : "FAIL", DP, (long)batch, (long)nq, (long)nk, (long)hq, (long)hkv, (long)d,
              causal, (long)q_offset, worst, pad_ok ? "" : ", WROTE INTO THE ROW PADDING");
}

int main() {
  one<80>(2, 70, 70, 2, 1, 72, false, 0, 1);      // SigLIP-like: d 72 padded to 80
  one<128>(1, 67, 130, 4, 2, 128, true, 63, 2);   // prefill chunk after 63 cached positions
  one<128>(1, 130, 130, 2, 2, 128, true, 0, 3);   // prefill from position 0
  one<64>(1, 17, 5, 1, 1, 64, false, 0, 4);       // fewer keys than one tile
  std::printf("%d failed\n", fails);
  return fails != 0;
}
'''


def main():
    args = between(source('kernels/cuda/nn.cuh'), 'struct AttentionArgs {', '\n};') + '\n};\n'
    kernel = between(source('kernels/cuda/attention_tc.cu'), 'constexpr int kAtWarps', '// ---- host side')
    return compile_and_run(SHIM + SHUFFLE + args + kernel + DRIVER)

if __name__ == '__main__':
    sys.exit(main())
