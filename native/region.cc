// N-API bindings of the region ops (issue 3). See native/common.h for the conventions.
#include "common.h"

namespace sr3d_napi {

void register_region(Napi::Env, Napi::Object) {}

}  // namespace sr3d_napi
