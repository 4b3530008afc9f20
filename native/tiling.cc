// N-API bindings of the tiling ops (kernels/resize_bicubic, tile_image, tile_nearest). See
// native/common.h for the conventions.
#include "common.h"

#include "../kernels/resize_bicubic.h"
#include "../kernels/tile_image.h"
#include "../kernels/tile_nearest.h"

namespace sr3d_napi {
namespace {

constexpr int64_t kMaxSide = int64_t(1) << 24;  // the resamplers' limit (Pillow's float box)

Napi::Value ResizeBicubic(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::ResizeBicubicArgs a;
    a.height = b.integer("height", 1, kMaxSide);
    a.width = b.integer("width", 1, kMaxSide);
    a.out_height = b.integer("outHeight", 1, kMaxSide);
    a.out_width = b.integer("outWidth", 1, kMaxSide);
    a.src = static_cast<const uint8_t*>(
        b.array("src", napi_uint8_array, checked_mul({a.height, a.width, 3}, "image")));
    a.dst = static_cast<uint8_t*>(
        b.output("dst", napi_uint8_array, checked_mul({a.out_height, a.out_width, 3}, "out")));
    sr3d::resize_bicubic_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::resize_bicubic(a, impl); }, undefined_result);
  });
}

struct Grid {
  int64_t height, width, cols, rows, tile, tiles;
};
Grid read_grid(Baton& b) {
  Grid g;
  g.height = b.integer("height", 1, kMaxSide);
  g.width = b.integer("width", 1, kMaxSide);
  g.cols = b.integer("cols", 1, 64);
  g.rows = b.integer("rows", 1, 64);
  g.tile = b.integer("tileSize", 1, 4096);
  g.tiles = sr3d::tile_count(g.cols, g.rows);
  return g;
}

Napi::Value TileImage(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const Grid g = read_grid(b);
    sr3d::TileImageArgs a;
    a.height = g.height;
    a.width = g.width;
    a.cols = g.cols;
    a.rows = g.rows;
    a.tile = g.tile;
    a.src = static_cast<const uint8_t*>(
        b.array("src", napi_uint8_array, checked_mul({g.height, g.width, 3}, "image")));
    a.tiles = static_cast<float*>(
        b.output("tiles", napi_float32_array, checked_mul({g.tiles, 3, g.tile, g.tile}, "out")));
    sr3d::tile_image_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::tile_image(a, impl); }, undefined_result);
  });
}

Napi::Value TileNearest(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const Grid g = read_grid(b);
    const bool f32 = b.str("dtype", {"float32", "uint8"}) == "float32";
    const int64_t channels = b.integer("channels", 1, 16);
    const napi_typedarray_type type = f32 ? napi_float32_array : napi_uint8_array;
    sr3d::TileNearestArgs a;
    a.height = g.height;
    a.width = g.width;
    a.cols = g.cols;
    a.rows = g.rows;
    a.tile = g.tile;
    a.pixel_bytes = channels * (f32 ? 4 : 1);
    a.src = static_cast<const uint8_t*>(b.array("src", type, checked_mul({g.height, g.width, channels}, "map")));
    a.dst = static_cast<uint8_t*>(b.output("dst", type, checked_mul({g.tiles, g.tile, g.tile, channels}, "out")));
    sr3d::tile_nearest_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::tile_nearest(a, impl); }, undefined_result);
  });
}

}  // namespace

void register_tiling(Napi::Env env, Napi::Object exports) {
  exports.Set("resizeBicubic", Napi::Function::New(env, ResizeBicubic));
  exports.Set("tileImage", Napi::Function::New(env, TileImage));
  exports.Set("tileNearest", Napi::Function::New(env, TileNearest));
}

}  // namespace sr3d_napi
