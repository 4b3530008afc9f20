// N-API bindings of the region ops (kernels/mask_pool, stitch_tiles, box3d_masks). See
// native/common.h for the conventions.
#include "common.h"

#include "../kernels/box3d_masks.h"
#include "../kernels/mask_pool.h"
#include "../kernels/mask_pool_tiles.h"
#include "../kernels/stitch_tiles.h"

namespace sr3d_napi {
namespace {

// The token grid of `features`: frames (F,h,w,C) or tiles (N,g,g,C) of a (cols, rows) plan.
sr3d::TokenGrid read_grid(Baton& b) {
  const int64_t C = b.integer("channels", 1, int64_t(1) << 24);
  if (b.str("layout", {"frames", "tiles"}) == "tiles") {
    const int64_t n = b.integer("tiles", 1, 1 << 20), g = b.integer("tile", 1, 1 << 16);
    const int64_t cols = b.integer("cols", 1, 1 << 16), rows = b.integer("rows", 1, 1 << 16);
    return sr3d::tiles_grid(n, g, cols, rows, C);
  }
  const int64_t F = b.integer("frames", 1, int64_t(1) << 30);
  const int64_t h = b.integer("height", 1, 1 << 20), w = b.integer("width", 1, 1 << 20);
  return sr3d::frames_grid(F, h, w, C);
}

const float* read_features(Baton& b, const sr3d::TokenGrid& g) {
  sr3d::token_grid_check(g, "features");
  const int64_t n = checked_mul({g.frames, g.tiles_per_frame, g.tile_h, g.tile_w, g.channels}, "features");
  return static_cast<const float*>(b.array("features", napi_float32_array, n));
}

Napi::Value StitchTiles(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::StitchTilesArgs a;
    a.grid = read_grid(b);
    a.features = read_features(b, a.grid);
    a.out = static_cast<float*>(
        b.output("out", napi_float32_array, checked_mul({a.grid.tokens(), a.grid.channels}, "out")));
    sr3d::stitch_tiles_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::stitch_tiles(a, impl); }, undefined_result);
  });
}

Napi::Value MaskPool(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::MaskPoolArgs a;
    a.grid = read_grid(b);
    a.features = read_features(b, a.grid);
    a.regions = b.integer("regions", 1, 65535);
    a.patch = b.integer("patch", 1, 1 << 10);
    a.mode = b.str("mode", {"area", "spatialrgpt"}) == "area" ? sr3d::MaskPoolMode::kArea
                                                              : sr3d::MaskPoolMode::kSpatialRgpt;
    // maskTiles > 0: masks are per tile, (M, maskTiles, P*g, P*g) (kernels/mask_pool_tiles.h).
    const int64_t mask_tiles = b.has("maskTiles") ? b.integer("maskTiles", 1, 1 << 20) : 0;
    const int64_t mask_bytes =
        mask_tiles > 0 ? checked_mul({a.regions, mask_tiles, a.grid.tile_h, a.patch, a.grid.tile_w, a.patch}, "masks")
                       : checked_mul({a.regions, a.grid.frames, a.grid.height, a.patch, a.grid.width, a.patch}, "masks");
    const uint8_t* masks = static_cast<const uint8_t*>(b.array("masks", napi_uint8_array, mask_bytes));
    a.out = static_cast<float*>(
        b.output("out", napi_float32_array, checked_mul({a.regions, a.grid.channels}, "out")));
    if (mask_tiles > 0) {
      sr3d::MaskPoolTilesArgs t;
      t.pool = a;
      t.tile_masks = masks;
      t.mask_tiles = mask_tiles;
      sr3d::mask_pool_tiles_check(t);
      sr3d::Impl impl = b.impl();
      return queue(info.Env(), b, [t, impl] { sr3d::mask_pool_tiles(t, impl); }, undefined_result);
    }
    a.masks = masks;
    sr3d::mask_pool_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::mask_pool(a, impl); }, undefined_result);
  });
}

Napi::Value Box3dMasks(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::Box3dMasksArgs a;
    a.mode = b.str("mode", {"inside", "project"}) == "inside" ? sr3d::Box3dMaskMode::kInside
                                                              : sr3d::Box3dMaskMode::kProject;
    a.frames = b.integer("frames", 0, 1 << 20);
    a.height = b.integer("height", 0, 1 << 20);
    a.width = b.integer("width", 0, 1 << 20);
    const int64_t n = checked_mul({a.frames, a.height, a.width}, "masks");
    const double* box = static_cast<const double*>(b.array("box", napi_float64_array, 15));
    for (int i = 0; i < 3; ++i) {
      a.box.center[i] = box[i];
      a.box.half[i] = box[12 + i];
    }
    for (int i = 0; i < 9; ++i) a.box.rotation[i] = box[3 + i];
    if (a.mode == sr3d::Box3dMaskMode::kInside) {
      a.points = static_cast<const float*>(b.array("points", napi_float32_array, 3 * n));
    } else {
      a.intrinsics = static_cast<const float*>(b.array("intrinsics", napi_float32_array, 4 * a.frames));
      a.poses = static_cast<const float*>(b.array("poses", napi_float32_array, 16 * a.frames, true));
      a.near_z = b.number("near");
    }
    a.masks = static_cast<uint8_t*>(b.output("masks", napi_uint8_array, n));
    // Counts come back as numbers: int64 scratch owned by the op.
    auto counts = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(2 * a.frames));
    a.inside = counts->data();
    a.valid = counts->data() + a.frames;
    sr3d::box3d_masks_check(a);
    sr3d::Impl impl = b.impl();
    const int64_t F = a.frames;
    return queue(info.Env(), b, [a, impl, counts] { sr3d::box3d_masks(a, impl); },
                 [counts, F](Napi::Env env) -> Napi::Value {
                   Napi::Object o = Napi::Object::New(env);
                   Napi::Array inside = Napi::Array::New(env, F), valid = Napi::Array::New(env, F);
                   for (int64_t f = 0; f < F; ++f) {
                     inside.Set(static_cast<uint32_t>(f), Napi::Number::New(env, static_cast<double>((*counts)[f])));
                     valid.Set(static_cast<uint32_t>(f), Napi::Number::New(env, static_cast<double>((*counts)[F + f])));
                   }
                   o.Set("inside", inside);
                   o.Set("valid", valid);
                   return o;
                 });
  });
}

}  // namespace

void register_region(Napi::Env env, Napi::Object exports) {
  exports.Set("stitchTiles", Napi::Function::New(env, StitchTiles));
  exports.Set("maskPool", Napi::Function::New(env, MaskPool));
  exports.Set("box3dMasks", Napi::Function::New(env, Box3dMasks));
}

}  // namespace sr3d_napi
