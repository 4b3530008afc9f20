// N-API bindings of the tiling ops (issue 3). See native/common.h for the conventions.
#include "common.h"

namespace sr3d_napi {

void register_tiling(Napi::Env, Napi::Object) {}

}  // namespace sr3d_napi
