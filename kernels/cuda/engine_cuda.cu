// The CUDA engine (engine.h): the CPU engine's math (kernels/cpu/engine_cpu.cc is the spec)
// on device-resident weights, a device float32 KV cache and grow-only scratch buffers.
//
// Layout choices:
// - All weights live in one device allocation (256-byte aligned entries). Big matrices keep
//   their checkpoint dtype; biases, norm weights and the position embedding become float32.
//   q|k|v (SigLIP, Qwen2) and gate|up (Qwen2) are stored back to back, so each is one
//   projection (one GEMV / GEMM launch, one read of the activations).
// - A Qwen2 layer is 9 launches: RMSNorm, q|k|v (+bias), RoPE + cache write, attention
//   (+ split combine in decode), o_proj (+residual), RMSNorm, gate|up, SiLU*up,
//   down (+residual). Prefill runs in chunks of kPrefillChunk positions (exact: attention
//   reads the cache), which bounds the scratch at ~chunk x (2 intermediate) floats.
// - Every public call selects the engine's device and serializes on a mutex, so the engine
//   may be driven from any thread; each call ends with a stream synchronize.
// - Zero copy (cuda::zero_copy_enabled, decided when the engine is created: by default on an
//   integrated GPU such as Jetson's, whose device memory is the host's DRAM): the per-step
//   host buffers are mapped pinned memory the kernels use directly (token ids read by the
//   embedding lookup, logits written by lm_head, the spatial-PE validity bytes and row list),
//   the read-only scene inputs (tiles, features, points) are the caller's arrays mapped in
//   place, and the projector writes its output straight into the caller's array. Where a
//   mapping fails, the copy path runs. The prefill embeddings and the MLP inputs are still
//   copied: the kernels update those buffers in place.
// - CUDA-graph decode (SR3D_CUDA_GRAPH=1, cuda::cuda_graph_mode; off by default until a device
//   run has checked it): the decode step's launches captured once per KV-length bucket
//   (decode_bucket) and replayed; the per-step values (token id, position) are read by the
//   kernels from a small device buffer the graph's first node fills from pinned host memory, so
//   the host work per token is two int32 stores and one cudaGraphLaunch. The kernels and their
//   order are the plain step's, so tokens and logits are bitwise the plain path's. A bucket's
//   first step runs plain and its graph is captured after it; a failed capture, instantiation
//   or launch turns graphs off for the engine (the plain path runs; never a wrong answer).
//   Prefill and every other call stay launch by launch.
//   Napkin math, launches per decode step: plain = 1 ids copy + 1 embed + layers x 10 (RMSNorm,
//   q|k|v, RoPE + cache, attention + split combine, o, RMSNorm, gate|up, SiLU*up, down) + final
//   norm + lm_head (+ logits copy) = 245 for Qwen2-0.5B (24 layers), 285 at 8B shapes (28
//   layers); with the graph: 1 launch of the same nodes. 0.5B on an H100 ran ~2 ms per token
//   against a ~0.29 ms weight-read bound (14.6%): ~8 us per launch, the host's submit rate and
//   the launch gaps, not the bytes. Replayed, a dependent kernel node costs ~1-2 us, so
//   0.5B: ~0.25 ms bound + ~0.4 ms of gaps ~ 0.6 ms (~3x, ~40% of the bound on the H200);
//   8B bf16 (~15 GB of weights, ~3.5 ms bound on the H200): the GEMVs are long enough that the
//   host already runs ahead, so only the gaps go: ~285 x ~2 us ~ 0.5 ms, ~10-15%.
#ifdef SR3D_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../engine.h"
#include "../engine_detail.h"
#include "../linear.h"
#include "../pool_points.h"
#include "../rope.h"
#include "../sinusoidal_encode.h"
#include "cuda_util.h"
#include "nn.cuh"

namespace sr3d {

namespace {

using cuda::DeviceBuffer;

constexpr int64_t kPrefillChunk = 512;  // positions per prefill pass
constexpr int64_t kTileChunk = 8;       // tiles per vision / projector pass
constexpr size_t kAlign = 256;

namespace wn = weight_names;
using wn::bias_of;
using wn::weight_of;

// An instantiated CUDA graph, destroyed with its owner (errors dropped: nobody to report to).
class GraphExec {
 public:
  explicit GraphExec(cudaGraphExec_t e = nullptr) : e_(e) {}
  ~GraphExec() {
    if (e_ && cudaGraphExecDestroy(e_) != cudaSuccess) (void)cudaGetLastError();
  }
  GraphExec(GraphExec&& o) noexcept : e_(o.e_) { o.e_ = nullptr; }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  cudaGraphExec_t get() const { return e_; }

 private:
  cudaGraphExec_t e_;
};

int64_t numel(const WeightTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return n;
}

// Lays the weights out in one device allocation. The same layout code runs twice: once to
// size the arena (copy = false: only offsets advance), once to copy (copy = true).
class Placer {
 public:
  Placer(const WeightMap& w, uint8_t* base) : w_(w), base_(base), copy_(base != nullptr) {}
  const WeightMap& weights() const { return w_; }

  const WeightTensor& tensor(const std::string& key) const {
    auto it = w_.find(key);
    if (it == w_.end()) throw_internal("CUDA engine: weight '" + key + "' vanished after check_weights");
    return it->second;
  }
  // Row-concatenation of `keys` (same column count) as one matrix in their common dtype
  // (float32 when they differ). int4 / int8 parts stay quantized when they share dtype, group
  // and perm (q, scales and zeros each concatenated: one GEMV launch); otherwise they are
  // dequantized exactly to float32 here (the reference's values; only memory is lost).
  WeightRef matrix(const std::vector<std::string>& keys) {
    std::vector<const WeightTensor*> parts;
    for (const std::string& k : keys) parts.push_back(&tensor(k));
    WType type = parts[0]->type;
    for (const WeightTensor* t : parts)
      if (t->type != type || (wtype_quantized(type) && !same_quant(*t, *parts[0]))) type = WType::kF32;
    WeightRef r;
    r.type = type;
    r.cols = 1;
    for (size_t i = 1; i < parts[0]->shape.size(); ++i) r.cols *= parts[0]->shape[i];
    for (const WeightTensor* t : parts) r.rows += t->shape[0];
    if (wtype_quantized(type)) return place_quant(parts, r);
    r.data = place(parts, type);
    return r;
  }
  WeightRef matrix(const std::string& key) { return matrix(std::vector<std::string>{key}); }
  // Float32 copy of the concatenation of `keys` (biases, norm weights, embeddings).
  const float* floats(const std::vector<std::string>& keys) {
    std::vector<const WeightTensor*> parts;
    for (const std::string& k : keys) parts.push_back(&tensor(k));
    return static_cast<const float*>(place(parts, WType::kF32));
  }
  const float* floats(const std::string& key) { return floats(std::vector<std::string>{key}); }
  size_t used() const { return used_; }

 private:
  static WeightRef quant_ref(const WeightTensor& t) {
    WeightRef r;
    r.data = t.data;
    r.type = t.type;
    r.rows = t.shape[0];
    r.cols = t.shape[1];
    r.scales = t.scales;
    r.zeros = t.zeros;
    r.group = t.group;
    r.perm = t.perm;
    return r;
  }
  static bool same_quant(const WeightTensor& a, const WeightTensor& b) {
    if (a.type != b.type || a.group != b.group || !a.perm != !b.perm) return false;
    return !a.perm || a.perm == b.perm ||
           std::memcmp(a.perm, b.perm, sizeof(int32_t) * static_cast<size_t>(a.shape[1])) == 0;
  }
  // Reserves `bytes` (kAlign-aligned): their device address on the copying pass, else null.
  uint8_t* reserve(size_t bytes) {
    const size_t offset = used_;
    used_ = (used_ + bytes + kAlign - 1) / kAlign * kAlign;
    return copy_ ? base_ + offset : nullptr;
  }
  // Quantized parts of one dtype / group / perm (r: their concatenated shape): q rows, then
  // scales, zeros and the one perm, each its own aligned entry (16-byte vector loads).
  WeightRef place_quant(const std::vector<const WeightTensor*>& parts, WeightRef r) {
    const WeightTensor& first = *parts[0];
    r.group = first.group;
    const WeightRef one = quant_ref(first);
    const int64_t row_bytes = quant_row_bytes(one), ng = r.cols / r.group;
    uint8_t* q = reserve(static_cast<size_t>(r.rows * row_bytes));
    uint8_t* sc = reserve(static_cast<size_t>(r.rows * ng) * sizeof(float));
    uint8_t* z = reserve(static_cast<size_t>(r.rows * ng));
    uint8_t* pm = first.perm ? reserve(sizeof(int32_t) * static_cast<size_t>(r.cols)) : nullptr;
    r.data = q;
    r.scales = reinterpret_cast<const float*>(sc);
    r.zeros = z;
    r.perm = reinterpret_cast<const int32_t*>(pm);
    if (!copy_) return r;
    for (const WeightTensor* t : parts) {
      const int64_t rows = t->shape[0];
      SR3D_CUDA_CHECK(cudaMemcpy(q, t->data, static_cast<size_t>(rows * row_bytes), cudaMemcpyHostToDevice));
      SR3D_CUDA_CHECK(cudaMemcpy(sc, t->scales, static_cast<size_t>(rows * ng) * sizeof(float), cudaMemcpyHostToDevice));
      SR3D_CUDA_CHECK(cudaMemcpy(z, t->zeros, static_cast<size_t>(rows * ng), cudaMemcpyHostToDevice));
      q += rows * row_bytes;
      sc += rows * ng * static_cast<int64_t>(sizeof(float));
      z += rows * ng;
    }
    if (pm)
      SR3D_CUDA_CHECK(cudaMemcpy(pm, first.perm, sizeof(int32_t) * static_cast<size_t>(r.cols), cudaMemcpyHostToDevice));
    return r;
  }

  const void* place(const std::vector<const WeightTensor*>& parts, WType type) {
    size_t bytes = 0;
    for (const WeightTensor* t : parts) bytes += static_cast<size_t>(numel(*t) * wtype_size(type));
    const size_t offset = used_;
    used_ = (used_ + bytes + kAlign - 1) / kAlign * kAlign;
    if (!copy_) return nullptr;
    uint8_t* dst = base_ + offset;
    for (const WeightTensor* t : parts) {
      const int64_t n = numel(*t);
      const size_t part = static_cast<size_t>(n * wtype_size(type));
      if (t->type == type) {
        SR3D_CUDA_CHECK(cudaMemcpy(dst, t->data, part, cudaMemcpyHostToDevice));
      } else if (wtype_quantized(t->type)) {  // only ever to float32, the reference's values
        std::vector<float> f(static_cast<size_t>(n));
        cpu::dequantize_rows(quant_ref(*t), 0, t->shape[0], f.data());
        SR3D_CUDA_CHECK(cudaMemcpy(dst, f.data(), part, cudaMemcpyHostToDevice));
      } else {  // only ever to float32
        std::vector<float> f(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) f[i] = load_weight(t->data, t->type, i);
        SR3D_CUDA_CHECK(cudaMemcpy(dst, f.data(), part, cudaMemcpyHostToDevice));
      }
      dst += part;
    }
    return base_ + offset;
  }

  const WeightMap& w_;
  uint8_t* base_;
  bool copy_;
  size_t used_ = 0;
};

struct VisionLayer {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b, *qkv_b, *o_b, *fc1_b, *fc2_b;
  WeightRef qkv, o, fc1, fc2;
};
struct LlmLayer {
  const float *in_norm, *post_norm, *qkv_b;
  WeightRef qkv, o, gate_up, down;
};
using engine_detail::MlpModule;
using engine_detail::MlpOp;

class CudaEngine final : public Engine {
 public:
  CudaEngine(const ModelSpec& spec, const WeightMap& weights, int device)
      : spec_(spec), device_(device) {
    check_weights(spec, weights);
    if (spec_.has_llm && spec_.llm.head_dim <= 0)
      spec_.llm.head_dim = spec_.llm.hidden / spec_.llm.heads;
    SR3D_CUDA_CHECK(cudaSetDevice(device_));
    zero_copy_ = cuda::zero_copy_enabled();
    graph_mode_ = cuda::cuda_graph_mode();
    stream_.reset(new cuda::Stream());  // non-blocking: a stream that can be captured

    Placer sizing(weights, nullptr);
    layout(sizing);
    arena_.allocate(sizing.used());
    Placer copying(weights, arena_.get());
    layout(copying);

    if (spec_.has_llm) {
      const LlmSpec& l = spec_.llm;
      const size_t per = static_cast<size_t>(l.layers * spec_.max_context * l.kv_heads * l.head_dim);
      kcache_.allocate(per);
      vcache_.allocate(per);
      // Under zero copy lm_head writes the host-visible logits itself (no device copy).
      logits_.reserve(static_cast<size_t>(l.vocab), zero_copy_);
      if (!logits_.device()) logits_dev_.allocate(static_cast<size_t>(l.vocab));
      std::vector<float> inv(static_cast<size_t>(l.head_dim / 2));
      rope_inv_freq(l.head_dim, l.rope_theta, inv.data());
      inv_freq_.allocate(inv.size());
      SR3D_CUDA_CHECK(cudaMemcpy(inv_freq_.get(), inv.data(), inv_freq_.bytes(), cudaMemcpyHostToDevice));
    }
  }

  ~CudaEngine() override {
    // The members free after this body; make their device current and let queued work end.
    if (cudaSetDevice(device_) != cudaSuccess) (void)cudaGetLastError();
    // (the mapped / pinned host buffers included: cudaFreeHost in ~HostBuffer).
    stream_.reset();
  }

  EngineInfo info() const override {
    std::lock_guard<std::mutex> lock(mu_);
    EngineInfo i;
    i.device = "cuda:" + std::to_string(device_);
    i.weight_bytes = static_cast<int64_t>(arena_.bytes());
    i.kv_cache_bytes = static_cast<int64_t>(kcache_.bytes() + vcache_.bytes());
    i.scratch_bytes = 0;
    for (const DeviceBuffer<float>& b : scratch_) i.scratch_bytes += static_cast<int64_t>(b.bytes());
    i.scratch_bytes += static_cast<int64_t>(ids_.bytes() + logits_dev_.bytes());
    i.max_context = spec_.has_llm ? spec_.max_context : 0;
    return i;
  }
  const ModelSpec& spec() const override { return spec_; }

  void encode_tiles(const float* tiles, int64_t n, float* out) override {
    if (!spec_.has_vision)
      throw_invalid_argument("a model with a vision tower", "encode_tiles", "has_vision = false");
    engine_detail::check_call(tiles, out, n, "tiles");
    std::lock_guard<std::mutex> lock(mu_);
    select();
    const VisionSpec& vs = spec_.vision;
    const int64_t S = vs.image_size, p = vs.patch_size, g = S / p, T = g * g, H = vs.hidden;
    const int64_t hd = H / vs.heads, I = vs.intermediate;
    const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
    cudaStream_t s = stream();
    const DeviceBuffer<float> tiles_view = map_input(tiles, n * 3 * S * S);
    for (int64_t i0 = 0; i0 < n; i0 += kTileChunk) {
      const int64_t nt = std::min(kTileChunk, n - i0), rows = nt * T;
      const float* img = tiles_view.get() ? tiles_view.get() + i0 * 3 * S * S : buf(kSlotIn, nt * 3 * S * S);
      float* h = buf(kSlotH, rows * H);
      float* a = buf(kSlotA, rows * H);
      float* qkv = buf(kSlotQkv, rows * 3 * H);
      float* att = buf(kSlotAtt, rows * H);
      float* m = buf(kSlotBig, rows * std::max(I, 3 * p * p));
      if (!tiles_view.get())
        SR3D_CUDA_CHECK(cudaMemcpyAsync(const_cast<float*>(img), tiles + i0 * 3 * S * S,
                                        sizeof(float) * nt * 3 * S * S, cudaMemcpyHostToDevice, s));
      cuda::im2col_patches_dev(img, nt, S, p, m, s);
      cuda::linear_dev(m, rows, patch_w_, patch_b_, h, s);
      cuda::add_rows_dev(h, nt, T, H, pos_, s);
      for (const VisionLayer& L : vlayers_) {
        cuda::layer_norm_dev(h, rows, H, L.ln1_g, L.ln1_b, vs.eps, a, s);
        cuda::linear_dev(a, rows, L.qkv, L.qkv_b, qkv, s);
        cuda::AttentionArgs at;
        at.q = qkv;
        at.k = qkv + H;
        at.v = qkv + 2 * H;
        at.out = att;
        at.q_stride = at.kv_stride = 3 * H;
        at.out_stride = H;
        at.q_bstride = at.kv_bstride = T * 3 * H;
        at.out_bstride = T * H;
        at.batch = nt;
        at.nq = at.nk = T;
        at.hq = at.hkv = vs.heads;
        at.d = hd;
        at.scale = scale;
        cuda::attention_dev(at, s);
        cuda::linear_dev(att, rows, L.o, L.o_b, h, s, cuda::kNoAct, h);
        cuda::layer_norm_dev(h, rows, H, L.ln2_g, L.ln2_b, vs.eps, a, s);
        cuda::linear_dev(a, rows, L.fc1, L.fc1_b, m, s, static_cast<int>(vs.act));
        cuda::linear_dev(m, rows, L.fc2, L.fc2_b, h, s, cuda::kNoAct, h);
      }
      SR3D_CUDA_CHECK(cudaMemcpyAsync(out + i0 * T * H, h, sizeof(float) * rows * H,
                                      cudaMemcpyDeviceToHost, s));
      SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
    }
  }

  void project(const float* features, int64_t n, float* out) override {
    if (!spec_.has_projector)
      throw_invalid_argument("a model with a projector", "project", "has_projector = false");
    engine_detail::check_call(features, out, n, "features");
    std::lock_guard<std::mutex> lock(mu_);
    select();
    const int64_t g = spec_.vision.image_size / spec_.vision.patch_size, G = (g + 2) / 3;
    const int64_t c = proj_c_, w2 = proj_l2_.rows, w5 = proj_l5_.rows, w7 = proj_l7_.rows;
    const float eps = spec_.projector.eps;
    cudaStream_t s = stream();
    const DeviceBuffer<float> in_view = map_input(features, n * g * g * c);
    const DeviceBuffer<float> out_view = zero_copy_ ? DeviceBuffer<float>::map(out, static_cast<size_t>(n * G * G * w7), s)
                                                    : DeviceBuffer<float>();
    for (int64_t i0 = 0; i0 < n; i0 += kTileChunk) {
      const int64_t nt = std::min(kTileChunk, n - i0), rows = nt * G * G;
      const float* in = in_view.get() ? in_view.get() + i0 * g * g * c : buf(kSlotIn, nt * g * g * c);
      float* a = buf(kSlotBig, rows * std::max(9 * c, w5));
      float* b = buf(kSlotA, rows * w2);
      float* o = out_view.get() ? out_view.get() + i0 * G * G * w7 : buf(kSlotH, rows * w7);
      if (!in_view.get())
        SR3D_CUDA_CHECK(cudaMemcpyAsync(const_cast<float*>(in), features + i0 * g * g * c,
                                        sizeof(float) * nt * g * g * c, cudaMemcpyHostToDevice, s));
      cuda::space_to_channel3_dev(in, nt, g, c, a, s);
      cuda::layer_norm_dev(a, rows, 9 * c, proj_ln1_g_, proj_ln1_b_, eps, a, s);
      cuda::linear_dev(a, rows, proj_l2_, proj_l2_b_, b, s, static_cast<int>(Act::kGeluErf));
      cuda::layer_norm_dev(b, rows, w2, proj_ln4_g_, proj_ln4_b_, eps, b, s);
      cuda::linear_dev(b, rows, proj_l5_, proj_l5_b_, a, s, static_cast<int>(Act::kGeluErf));
      cuda::linear_dev(a, rows, proj_l7_, proj_l7_b_, o, s);
      if (!out_view.get())
        SR3D_CUDA_CHECK(cudaMemcpyAsync(out + i0 * G * G * w7, o, sizeof(float) * rows * w7,
                                        cudaMemcpyDeviceToHost, s));
      SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
    }
  }

  void run_mlp(const std::string& module, const float* x, int64_t rows, float* out) override {
    const MlpModule& m = mlp(module);
    engine_detail::check_call(x, out, rows, "x");
    std::lock_guard<std::mutex> lock(mu_);
    select();
    cudaStream_t s = stream();
    SR3D_CUDA_CHECK(cudaMemcpyAsync(mlp_input(m, rows), x, sizeof(float) * rows * m.in, cudaMemcpyHostToDevice, s));
    const float* y = mlp_on_device(m, rows, s);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(out, y, sizeof(float) * rows * m.out, cudaMemcpyDeviceToHost, s));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  // Pooling, the gather of valid rows, the encoding and the MLP stay on the device; only the
  // validity bytes come back (to list the rows) and the PE rows (added on the host, where the
  // features are). The kernels and the MLP's per-image row counts are the unfused chain's.
  void add_spatial_pe(const SpatialPeArgs& a) override {
    spatial_pe_check(*this, a);
    if (a.n == 0) return;
    const MlpModule& m = mlp(wn::mlp_module::kSpatialPe);
    std::lock_guard<std::mutex> lock(mu_);
    select();
    cudaStream_t s = stream();
    const int64_t rows = a.n * a.tokens, px = a.n * a.tile * a.tile;
    const DeviceBuffer<float> points_view = map_input(a.points, 3 * px);
    const float* points = points_view.get() ? points_view.get() : buf(kSlotIn, 3 * px);
    float* pooled = buf(kSlotH, 3 * rows);
    if (zero_copy_) valid_host_.reserve(static_cast<size_t>(rows), true);
    uint8_t* valid = zero_copy_ && valid_host_.device()
                         ? valid_host_.device()
                         : reinterpret_cast<uint8_t*>(buf(kSlotQkv, rows / 4 + 1));
    if (!points_view.get())
      SR3D_CUDA_CHECK(cudaMemcpyAsync(const_cast<float*>(points), a.points, sizeof(float) * 3 * px,
                                      cudaMemcpyHostToDevice, s));
    PoolPointsArgs pa;
    pa.points = points;
    pa.batch = a.n;
    pa.height = a.tile;
    pa.width = a.tile;
    pa.patch = a.patch;
    pa.pooled = pooled;
    pa.valid = valid;
    cuda::pool_points(pa, s);
    std::vector<uint8_t> valid_copy;
    const uint8_t* valid_host = valid_host_.host();
    if (valid != valid_host_.device()) {
      valid_copy.resize(static_cast<size_t>(rows));
      SR3D_CUDA_CHECK(cudaMemcpyAsync(valid_copy.data(), valid, static_cast<size_t>(rows), cudaMemcpyDeviceToHost, s));
      valid_host = valid_copy.data();
    }
    SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
    const ValidRows v = spatial_pe_valid_rows(a, valid_host);
    if (v.rows.empty()) return;
    const int32_t* at = host_visible(rows_host_, v.rows.data(), v.rows.size());
    if (!at) {
      int32_t* d = reinterpret_cast<int32_t*>(buf(kSlotAtt, static_cast<int64_t>(v.rows.size())));
      SR3D_CUDA_CHECK(cudaMemcpyAsync(d, v.rows.data(), sizeof(int32_t) * v.rows.size(), cudaMemcpyHostToDevice, s));
      at = d;
    }
    std::vector<float> pe;
    for (size_t i = 0; i + 1 < v.starts.size(); ++i) {
      const int64_t nv = v.starts[i + 1] - v.starts[i];
      if (nv == 0) continue;
      float* pts = buf(kSlotWs, 3 * nv);
      cuda::gather_rows3(pooled, at + v.starts[i], nv, pts, s);
      SinusoidalEncodeArgs sa;
      sa.points = pts;
      sa.n = nv;
      sa.num_freqs = a.num_freqs;
      sa.include_input = a.include_input;
      sa.features = mlp_input(m, nv);
      cuda::sinusoidal_encode(sa, s);
      const float* y = mlp_on_device(m, nv, s);
      // Under zero copy the rows come back into pinned memory (one DMA, no staging copy).
      float* pe_rows = nullptr;
      if (zero_copy_) {
        pe_host_.reserve(static_cast<size_t>(nv * a.hidden), false);
        pe_rows = pe_host_.host();
      } else {
        pe.resize(static_cast<size_t>(nv * a.hidden));
        pe_rows = pe.data();
      }
      SR3D_CUDA_CHECK(cudaMemcpyAsync(pe_rows, y, sizeof(float) * nv * a.hidden, cudaMemcpyDeviceToHost, s));
      SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
      spatial_pe_add(a, v.rows.data() + v.starts[i], nv, pe_rows);
    }
  }
  int64_t mlp_in_dim(const std::string& module) const override { return mlp(module).in; }
  int64_t mlp_out_dim(const std::string& module) const override { return mlp(module).out; }

  void embed_tokens(const int32_t* ids, int64_t n, float* out) override {
    engine_detail::need_llm(spec_, "embed_tokens");
    if (n < 1) throw_invalid_argument("a positive token count", "n", std::to_string(n));
    if (!ids) throw_invalid_argument("a non-null buffer", "ids", "nullptr");
    if (!out) throw_invalid_argument("a non-null buffer", "out", "nullptr");
    for (int64_t i = 0; i < n; ++i) engine_detail::check_token(spec_, ids[i], "ids[" + std::to_string(i) + "]");
    std::lock_guard<std::mutex> lock(mu_);
    select();
    cudaStream_t s = stream();
    const int64_t H = spec_.llm.hidden;
    float* e = buf(kSlotIn, n * H);
    embed_on_device(ids, n, e);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(out, e, sizeof(float) * n * H, cudaMemcpyDeviceToHost, s));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
  }

  void reset() override {
    std::lock_guard<std::mutex> lock(mu_);
    cached_ = 0;
  }
  int64_t cached() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

  void prefill(const float* emb, int64_t n) override {
    engine_detail::need_llm(spec_, "prefill");
    if (n < 1) throw_invalid_argument("a positive position count", "n", std::to_string(n));
    if (!emb) throw_invalid_argument("a non-null buffer", "embeddings", "nullptr");
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + n > spec_.max_context)
      throw_invalid_argument("at most " + std::to_string(spec_.max_context - cached_) +
                                 " new positions (max_context " +
                                 std::to_string(spec_.max_context) + ", " +
                                 std::to_string(cached_) + " cached)",
                             "n", std::to_string(n));
    select();
    cudaStream_t s = stream();
    const int64_t H = spec_.llm.hidden;
    has_logits_ = false;
    for (int64_t off = 0; off < n; off += kPrefillChunk) {
      const int64_t c = std::min(kPrefillChunk, n - off);
      float* h = buf(kSlotH, c * H);
      SR3D_CUDA_CHECK(cudaMemcpyAsync(h, emb + off * H, sizeof(float) * c * H,
                                      cudaMemcpyHostToDevice, s));
      run_layers(h, c);
      if (off + c == n) logits_of(h + (c - 1) * H);
      SR3D_CUDA_CHECK(cudaStreamSynchronize(s));  // the pageable source of the next chunk
    }
    has_logits_ = true;
  }

  void decode(int32_t token) override {
    engine_detail::need_llm(spec_, "decode");
    engine_detail::check_token(spec_, token, "token");
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + 1 > spec_.max_context)
      throw_invalid_argument("a free KV-cache position (max_context " +
                                 std::to_string(spec_.max_context) + " reached; reset())",
                             "decode", std::to_string(cached_) + " cached");
    select();
    cudaStream_t s = stream();
    has_logits_ = false;
    int64_t capture = 0;  // a bucket without its graph yet: captured after this plain step
    if (!replay_decode_graph(token, &capture)) {
      float* h = buf(kSlotH, spec_.llm.hidden);
      embed_on_device(&token, 1, h);
      run_layers(h, 1);
      logits_of(h);
    }
    SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
    has_logits_ = true;
    if (capture) capture_decode_graph(capture);
  }

  const float* last_logits() override {
    engine_detail::need_llm(spec_, "last_logits");
    std::lock_guard<std::mutex> lock(mu_);
    if (!has_logits_)
      throw_invalid_argument("a prefill() or decode() before last_logits()", "last_logits",
                             "an empty session");
    return logits_.host();
  }

 private:
  enum Slot { kSlotIn, kSlotH, kSlotA, kSlotQkv, kSlotAtt, kSlotBig, kSlotAct, kSlotWs, kSlots };

  cudaStream_t stream() const { return stream_->get(); }
  void select() const { SR3D_CUDA_CHECK(cudaSetDevice(device_)); }

  // Grow-only scratch; a regrow frees the old buffer (cudaFree waits for queued work) and
  // makes the decode graphs' frozen pointers stale (scratch_epoch_).
  float* buf(Slot slot, int64_t count) {
    DeviceBuffer<float>& b = scratch_[slot];
    if (b.size() < static_cast<size_t>(count)) {
      b.allocate(static_cast<size_t>(count));
      ++scratch_epoch_;
    }
    return b.get();
  }

  const MlpModule& mlp(const std::string& module) const { return engine_detail::find_mlp(mlps_, module); }

  // An MLP over `rows` on the device: its input goes to mlp_input(m, rows) (a scratch slot),
  // then mlp_on_device runs the ops and returns where the output is.
  static int64_t mlp_widest(const MlpModule& m) {
    int64_t widest = m.in;
    for (const MlpOp& op : m.ops) widest = std::max(widest, op.width);
    return widest;
  }
  float* mlp_input(const MlpModule& m, int64_t rows) { return buf(kSlotA, rows * mlp_widest(m)); }
  float* mlp_on_device(const MlpModule& m, int64_t rows, cudaStream_t s) {
    float* cur = mlp_input(m, rows);
    float* nxt = buf(kSlotBig, rows * mlp_widest(m));
    int64_t width = m.in;
    for (const MlpOp& op : m.ops) {
      switch (op.kind) {
        case MlpStep::kLinear:
          cuda::linear_dev(cur, rows, op.w, op.bias, nxt, s);
          std::swap(cur, nxt);
          break;
        case MlpStep::kLayerNorm:
          cuda::layer_norm_dev(cur, rows, width, op.gamma, op.beta, op.eps, cur, s);
          break;
        case MlpStep::kGeluErf: cuda::activation_dev(cur, rows * width, Act::kGeluErf, s); break;
        case MlpStep::kGeluTanh: cuda::activation_dev(cur, rows * width, Act::kGeluTanh, s); break;
      }
      width = op.width;
    }
    return cur;
  }

  // ids (host, validated) -> rows of float32 embeddings at `out` (device).
  void embed_on_device(const int32_t* ids, int64_t n, float* out) {
    cudaStream_t s = stream();
    if (const int32_t* mapped = host_visible(ids_host_, ids, static_cast<size_t>(n))) {
      cuda::embed_rows_dev(embed_, mapped, n, out, s);
      return;
    }
    if (ids_.size() < static_cast<size_t>(n)) ids_.allocate(static_cast<size_t>(n));
    SR3D_CUDA_CHECK(cudaMemcpyAsync(ids_.get(), ids, sizeof(int32_t) * n, cudaMemcpyHostToDevice, s));
    cuda::embed_rows_dev(embed_, ids_.get(), n, out, s);
  }

  // Under zero copy: h[0, n) written into the engine's mapped buffer b, returned as the
  // device address the kernels read; null on the copy path (or when b got no mapping).
  // Waits for the stream first: a kernel of an earlier call that threw may still read b.
  template <typename T>
  const T* host_visible(cuda::HostBuffer<T>& b, const T* h, size_t n) {
    if (!zero_copy_) return nullptr;
    b.reserve(n, true);
    if (!b.device()) return nullptr;
    SR3D_CUDA_CHECK(cudaStreamSynchronize(stream()));
    std::memcpy(b.host(), h, n * sizeof(T));
    return b.device();
  }

  // Under zero copy: the caller's read-only input mapped in place (released, after a stream
  // synchronize, when the view goes); a null buffer on the copy path or when mapping fails.
  DeviceBuffer<float> map_input(const float* h, int64_t count) {
    if (!zero_copy_) return DeviceBuffer<float>();
    return DeviceBuffer<float>::map(const_cast<float*>(h), static_cast<size_t>(count), stream());
  }

  // The scratch of run_layers over c positions (a graph capture reserves it first: a capture
  // must allocate nothing).
  struct LayerScratch {
    float *a, *qkv, *att, *gu, *act, *ws;
    size_t ws_floats;
  };
  LayerScratch layer_scratch(int64_t c) {
    const LlmSpec& l = spec_.llm;
    const int64_t H = l.hidden, hd = l.head_dim, hq = l.heads, hkv = l.kv_heads, I = l.intermediate;
    LayerScratch t;
    t.a = buf(kSlotA, c * H);
    t.qkv = buf(kSlotQkv, c * (hq + 2 * hkv) * hd);
    t.att = buf(kSlotAtt, c * hq * hd);
    t.gu = buf(kSlotBig, c * 2 * I);
    t.act = buf(kSlotAct, c * I);
    t.ws_floats = cuda::attention_workspace_floats(c, hq, hd);
    t.ws = buf(kSlotWs, static_cast<int64_t>(t.ws_floats));
    return t;
  }

  // The decoder over c new positions (cached_ ..), h [c][hidden] in place; advances cached_.
  void run_layers(float* h, int64_t c) {
    run_layers_at(h, c, cached_, nullptr);
    cached_ += c;
  }
  // run_layers' launches for positions pos0 .. pos0 + c - 1. pos_dev (a decode graph's capture):
  // RoPE, the cache write and attention read the first position from *pos_dev when they run,
  // and pos0 is the largest it may be (the attention grid covers pos0 + c keys).
  void run_layers_at(float* h, int64_t c, int64_t pos0, const int32_t* pos_dev) {
    const LlmSpec& l = spec_.llm;
    cudaStream_t s = stream();
    const int64_t H = l.hidden, hd = l.head_dim, hq = l.heads, hkv = l.kv_heads, I = l.intermediate;
    const int64_t qkv_cols = (hq + 2 * hkv) * hd;
    const int64_t per_layer = spec_.max_context * hkv * hd;
    const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
    const LayerScratch t = layer_scratch(c);
    float *a = t.a, *qkv = t.qkv, *att = t.att, *gu = t.gu, *act = t.act, *ws = t.ws;
    const size_t ws_floats = t.ws_floats;
    for (size_t li = 0; li < llayers_.size(); ++li) {
      const LlmLayer& L = llayers_[li];
      float* kc = kcache_.get() + static_cast<int64_t>(li) * per_layer;
      float* vc = vcache_.get() + static_cast<int64_t>(li) * per_layer;
      cuda::rms_norm_dev(h, c, H, L.in_norm, l.eps, a, s);
      cuda::linear_dev(a, c, L.qkv, L.qkv_b, qkv, s);
      cuda::rope_qkv_to_cache_dev(qkv, c, hq, hkv, hd, pos0, inv_freq_.get(), kc, vc, s, pos_dev);
      cuda::AttentionArgs at;
      at.q = qkv;
      at.k = kc;
      at.v = vc;
      at.out = att;
      at.q_stride = qkv_cols;
      at.kv_stride = hkv * hd;
      at.out_stride = hq * hd;
      at.nq = c;
      at.nk = pos0 + c;
      at.hq = hq;
      at.hkv = hkv;
      at.d = hd;
      at.scale = scale;
      at.causal = true;
      at.q_offset = pos0;
      at.q_offset_dev = pos_dev;
      at.workspace = ws;
      at.workspace_floats = ws_floats;
      cuda::attention_dev(at, s);
      cuda::linear_dev(att, c, L.o, nullptr, h, s, cuda::kNoAct, h);
      cuda::rms_norm_dev(h, c, H, L.post_norm, l.eps, a, s);
      cuda::linear_dev(a, c, L.gate_up, nullptr, gu, s);
      cuda::silu_mul_dev(gu, gu + I, c, I, 2 * I, act, s);
      cuda::linear_dev(act, c, L.down, nullptr, h, s, cuda::kNoAct, h);
    }
  }

  // KV-length bucket of the decode step at position pos (pos + 1 keys): 128 keys, then powers
  // of two, capped at max_context. A bucket's graph sizes the attention grid (its key splits)
  // for the bucket's largest count; the blocks past a step's real keys return at once (at most
  // half the split blocks, each a few instructions). <= 9 graphs up to 32k positions.
  int64_t decode_bucket(int64_t pos) const {
    int64_t cap = 128;
    while (cap < pos + 1) cap *= 2;
    return std::min(cap, spec_.max_context);
  }

  // The decode step at cached_ as one launch of its bucket's graph: true when it ran (cached_
  // advanced, logits queued). False: the caller runs the plain step; *capture is then the
  // bucket whose graph to capture after it (0: none).
  bool replay_decode_graph(int32_t token, int64_t* capture) {
    *capture = 0;
    if (graph_mode_ == cuda::CudaGraphMode::kOff) return false;
    if (graphs_epoch_ != scratch_epoch_) graphs_.clear();  // a scratch slot moved since the captures
    const int64_t bucket = decode_bucket(cached_);
    const DecodeGraph* g = nullptr;
    for (const DecodeGraph& d : graphs_)
      if (d.bucket == bucket) g = &d;
    if (!g) {
      *capture = bucket;
      return false;
    }
    // The previous step's copy node has run: every decode ends with a stream synchronize.
    step_host_.host()[0] = token;
    step_host_.host()[1] = static_cast<int32_t>(cached_);
    if (cudaGraphLaunch(g->exec.get(), stream()) != cudaSuccess) {  // nothing ran: plain instead
      (void)cudaGetLastError();
      drop_graphs();
      return false;
    }
    cuda::count_cuda_graph(cuda::CudaGraphEvent::kReplayed);
    ++cached_;
    return true;
  }

  // Captures the decode step of `bucket` (nothing runs) and keeps its instantiated graph; on
  // any failure graphs go off for this engine and the plain path stays.
  void capture_decode_graph(int64_t bucket) {
    cudaGraphExec_t exec = nullptr;
    try {
      exec = capture_decode_step(bucket);
    } catch (...) {  // out of memory reserving the step's buffers: no graph, the step ran already
      exec = nullptr;
    }
    (void)cudaGetLastError();
    if (!exec) {
      drop_graphs();
      return;
    }
    cuda::count_cuda_graph(cuda::CudaGraphEvent::kCaptured);
    graphs_.push_back(DecodeGraph{bucket, GraphExec(exec)});
    graphs_epoch_ = scratch_epoch_;
  }
  cudaGraphExec_t capture_decode_step(int64_t bucket) {
    // Every buffer the step uses exists before the capture: a capture may allocate nothing.
    step_host_.reserve(2, false);  // pinned: the graph's copy node reads it at each replay
    if (step_dev_.size() < 2) step_dev_.allocate(2);
    float* h = buf(kSlotH, spec_.llm.hidden);
    (void)layer_scratch(1);  // logits_of's kSlotA included
    if (graphs_epoch_ != scratch_epoch_) graphs_.clear();
    cudaStream_t s = stream();
    cudaGraph_t graph = nullptr;
    bool queued = false;
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return nullptr;
    try {
      // The test hook's failure: a synchronize is illegal while capturing (it invalidates it).
      if (graph_mode_ == cuda::CudaGraphMode::kFailCapture) (void)cudaStreamSynchronize(s);
      SR3D_CUDA_CHECK(cudaMemcpyAsync(step_dev_.get(), step_host_.host(), 2 * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, s));
      cuda::embed_rows_dev(embed_, step_dev_.get(), 1, h, s);
      run_layers_at(h, 1, bucket - 1, step_dev_.get() + 1);
      logits_of(h);
      queued = true;
    } catch (...) {  // a call refused while capturing: no graph (the capture still ends below)
    }
    if (cudaStreamEndCapture(s, &graph) != cudaSuccess) queued = false;
    cudaGraphExec_t exec = nullptr;
    if (queued && graph && cudaGraphInstantiateWithFlags(&exec, graph, 0) != cudaSuccess) exec = nullptr;
    if (graph && cudaGraphDestroy(graph) != cudaSuccess) (void)cudaGetLastError();
    return exec;
  }

  // Graphs off for this engine (a capture, instantiation or launch failed): the plain path.
  void drop_graphs() {
    cuda::count_cuda_graph(cuda::CudaGraphEvent::kFailed);
    graph_mode_ = cuda::CudaGraphMode::kOff;
    graphs_.clear();
  }

  // Final norm + lm_head of one position (device row) into the pinned logits (queued).
  void logits_of(const float* row) {
    const LlmSpec& l = spec_.llm;
    cudaStream_t s = stream();
    float* a = buf(kSlotA, l.hidden);
    cuda::rms_norm_dev(row, 1, l.hidden, final_norm_, l.eps, a, s);
    if (logits_.device()) {
      cuda::linear_dev(a, 1, lm_head_, nullptr, logits_.device(), s);
      return;
    }
    cuda::linear_dev(a, 1, lm_head_, nullptr, logits_dev_.get(), s);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(logits_.host(), logits_dev_.get(), logits_dev_.bytes(),
                                    cudaMemcpyDeviceToHost, s));
  }

  void layout(Placer& P) {
    if (spec_.has_vision) {
      const VisionSpec& vs = spec_.vision;
      namespace V = wn::vision;
      patch_w_ = P.matrix(weight_of(wn::vision_key(V::kPatchEmbedding)));
      patch_b_ = P.floats(bias_of(wn::vision_key(V::kPatchEmbedding)));
      pos_ = P.floats(weight_of(wn::vision_key(V::kPositionEmbedding)));
      vlayers_.clear();
      for (int64_t i = 0; i < vs.layers_run; ++i) {
        auto key = [i](const char* module) { return wn::vision_layer_key(i, module); };
        VisionLayer L;
        L.ln1_g = P.floats(weight_of(key(V::kLayerNorm1)));
        L.ln1_b = P.floats(bias_of(key(V::kLayerNorm1)));
        L.ln2_g = P.floats(weight_of(key(V::kLayerNorm2)));
        L.ln2_b = P.floats(bias_of(key(V::kLayerNorm2)));
        L.qkv = P.matrix({weight_of(key(V::kQ)), weight_of(key(V::kK)), weight_of(key(V::kV))});
        L.qkv_b = P.floats({bias_of(key(V::kQ)), bias_of(key(V::kK)), bias_of(key(V::kV))});
        L.o = P.matrix(weight_of(key(V::kOut)));
        L.o_b = P.floats(bias_of(key(V::kOut)));
        L.fc1 = P.matrix(weight_of(key(V::kFc1)));
        L.fc1_b = P.floats(bias_of(key(V::kFc1)));
        L.fc2 = P.matrix(weight_of(key(V::kFc2)));
        L.fc2_b = P.floats(bias_of(key(V::kFc2)));
        vlayers_.push_back(L);
      }
    }
    if (spec_.has_projector) {
      namespace Pj = wn::projector;
      const std::string ln1 = wn::projector_key(Pj::kLayerNorm1), fc1 = wn::projector_key(Pj::kFc1),
                        ln2 = wn::projector_key(Pj::kLayerNorm2), fc2 = wn::projector_key(Pj::kFc2),
                        fc3 = wn::projector_key(Pj::kFc3);
      proj_c_ = P.tensor(weight_of(ln1)).shape[0] / 9;
      proj_ln1_g_ = P.floats(weight_of(ln1));
      proj_ln1_b_ = P.floats(bias_of(ln1));
      proj_l2_ = P.matrix(weight_of(fc1));
      proj_l2_b_ = P.floats(bias_of(fc1));
      proj_ln4_g_ = P.floats(weight_of(ln2));
      proj_ln4_b_ = P.floats(bias_of(ln2));
      proj_l5_ = P.matrix(weight_of(fc2));
      proj_l5_b_ = P.floats(bias_of(fc2));
      proj_l7_ = P.matrix(weight_of(fc3));
      proj_l7_b_ = P.floats(bias_of(fc3));
    }
    if (spec_.has_llm) {
      const LlmSpec& l = spec_.llm;
      namespace W = wn::llm;
      embed_ = P.matrix(weight_of(wn::llm_key(W::kEmbedTokens)));
      lm_head_ = l.tie_word_embeddings ? embed_ : P.matrix(weight_of(wn::llm_key(W::kLmHead)));
      final_norm_ = P.floats(weight_of(wn::llm_key(W::kNorm)));
      llayers_.clear();
      for (int64_t i = 0; i < l.layers; ++i) {
        auto key = [i](const char* module) { return wn::llm_layer_key(i, module); };
        LlmLayer L;
        L.in_norm = P.floats(weight_of(key(W::kInputNorm)));
        L.post_norm = P.floats(weight_of(key(W::kPostAttentionNorm)));
        L.qkv = P.matrix({weight_of(key(W::kQ)), weight_of(key(W::kK)), weight_of(key(W::kV))});
        L.qkv_b = P.floats({bias_of(key(W::kQ)), bias_of(key(W::kK)), bias_of(key(W::kV))});
        L.o = P.matrix(weight_of(key(W::kO)));
        L.gate_up = P.matrix({weight_of(key(W::kGate)), weight_of(key(W::kUp))});
        L.down = P.matrix(weight_of(key(W::kDown)));
        llayers_.push_back(L);
      }
    }
    mlps_.clear();
    for (const auto& entry : spec_.mlps) {
      const std::string& name = entry.first;
      mlps_[name] = engine_detail::resolve_mlp(
          name, entry.second, P.weights(), [&](const std::string& k) { return P.matrix(k); },
          [&](const std::string& k) { return P.floats(k); });
    }
  }

  ModelSpec spec_;
  int device_;
  mutable std::mutex mu_;
  std::unique_ptr<cuda::Stream> stream_;
  DeviceBuffer<uint8_t> arena_;

  WeightRef patch_w_;
  const float *patch_b_ = nullptr, *pos_ = nullptr;
  std::vector<VisionLayer> vlayers_;

  int64_t proj_c_ = 0;
  WeightRef proj_l2_, proj_l5_, proj_l7_;
  const float *proj_ln1_g_ = nullptr, *proj_ln1_b_ = nullptr, *proj_ln4_g_ = nullptr,
              *proj_ln4_b_ = nullptr, *proj_l2_b_ = nullptr, *proj_l5_b_ = nullptr,
              *proj_l7_b_ = nullptr;

  WeightRef embed_, lm_head_;
  const float* final_norm_ = nullptr;
  std::vector<LlmLayer> llayers_;
  DeviceBuffer<float> kcache_, vcache_, logits_dev_, inv_freq_;
  cuda::HostBuffer<float> logits_;  // mapped under zero copy: lm_head writes it directly
  int64_t cached_ = 0;
  bool has_logits_ = false;

  engine_detail::MlpModules mlps_;
  DeviceBuffer<float> scratch_[kSlots];
  DeviceBuffer<int32_t> ids_;
  // Zero copy only: the mapped per-call host buffers (see host_visible).
  bool zero_copy_ = false;
  cuda::HostBuffer<int32_t> ids_host_, rows_host_;
  cuda::HostBuffer<uint8_t> valid_host_;
  cuda::HostBuffer<float> pe_host_;

  // CUDA-graph decode (see the top of the file): one graph per KV-length bucket, valid while
  // no scratch slot has moved (graphs_epoch_ == scratch_epoch_); the step's [token, position]
  // in pinned host memory, copied by each graph's first node into step_dev_.
  struct DecodeGraph {
    int64_t bucket;
    GraphExec exec;
  };
  cuda::CudaGraphMode graph_mode_ = cuda::CudaGraphMode::kOff;
  std::vector<DecodeGraph> graphs_;
  uint64_t scratch_epoch_ = 0, graphs_epoch_ = 0;
  cuda::HostBuffer<int32_t> step_host_;
  DeviceBuffer<int32_t> step_dev_;
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(const ModelSpec& spec, const WeightMap& weights,
                                         int device) {
  if (spec.llm_activations != ActPrecision::kF32)  // kernels/cpu/linear_a8.cc / linear_ab16.cc only
    throw_invalid_argument("activations 'f32' on CUDA (int8 / bf16 activations run on the CPU engine)",
                           "activations", act_precision_name(spec.llm_activations));
  return std::unique_ptr<Engine>(new CudaEngine(spec, weights, device));
}

}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
