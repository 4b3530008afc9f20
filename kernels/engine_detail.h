// What the CPU and CUDA engines share, internal to them (and kernels/engine.cc): the small
// sequential modules (ModelSpec::mlps: the 3D-PE MLP, the region projector) as both engines
// run them: resolved once from the spec and the weights into ops whose pointers are the
// engine's own (host for the CPU engine, device for the CUDA one). Weight keys come from
// weight_names.h.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine.h"
#include "weight_names.h"

namespace sr3d {
namespace engine_detail {

inline int64_t llm_head_dim(const LlmSpec& s) {
  return s.head_dim > 0 ? s.head_dim : (s.heads > 0 ? s.hidden / s.heads : 0);
}

struct MlpOp {
  MlpStep::Kind kind;
  WeightRef w;
  const float *bias = nullptr, *gamma = nullptr, *beta = nullptr;
  int64_t width = 0;  // output width of the step
  float eps = 0;
};
struct MlpModule {
  std::vector<MlpOp> ops;
  int64_t in = 0, out = 0;
};

using MlpModules = std::map<std::string, MlpModule>;

// The named module; kInvalidArgument listing the modules the model has when it has no such one.
inline const MlpModule& find_mlp(const MlpModules& mlps, const std::string& module) {
  auto it = mlps.find(module);
  if (it == mlps.end()) {
    std::string known;
    for (const auto& m : mlps) known += (known.empty() ? "" : ", ") + ("'" + m.first + "'");
    throw_invalid_argument("an MLP module of this model (" + (known.empty() ? "none" : known) + ")",
                           "module", "'" + module + "'");
  }
  return it->second;
}

// The ops of module `name` (check_weights has accepted it): `matrix(key)` gives a Linear
// weight, `floats(key)` a float32 vector (bias, LayerNorm gamma / beta), both in the engine's
// memory. The input width comes from the first step's weight.
template <class Matrix, class Floats>
MlpModule resolve_mlp(const std::string& name, const std::vector<MlpStep>& steps,
                      const WeightMap& weights, Matrix&& matrix, Floats&& floats) {
  MlpModule m;
  const std::vector<int64_t>& first = weights.at(name + "." + steps.at(0).weight).shape;
  m.in = steps[0].kind == MlpStep::kLinear ? first.at(1) : first.at(0);
  int64_t width = m.in;
  for (const MlpStep& st : steps) {
    MlpOp op;
    op.kind = st.kind;
    op.eps = st.eps;
    if (st.kind == MlpStep::kLinear) {
      op.w = matrix(name + "." + st.weight);
      op.bias = st.bias.empty() ? nullptr : floats(name + "." + st.bias);
      width = op.w.rows;
    } else if (st.kind == MlpStep::kLayerNorm) {
      op.gamma = floats(name + "." + st.weight);
      op.beta = floats(name + "." + st.bias);
    }
    op.width = width;
    m.ops.push_back(op);
  }
  m.out = width;
  return m;
}

}  // namespace engine_detail
}  // namespace sr3d
