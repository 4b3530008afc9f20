#!/usr/bin/env bash
# Builds the CPU addon through node-gyp (binding.gyp, same sources.json) in a scratch copy of
# the package and checks it computes exactly what the cmake-js build computes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$tmp")
ln -s "$root/node_modules" "$tmp/node_modules"
(cd "$tmp" && SR3D_BUILDER=node-gyp npm_config_nodedir="${npm_config_nodedir:-$(npm config get nodedir)}" node scripts/build-native.js)
node -e '
const a = require(process.argv[1]), b = require(process.argv[2]);
const n = 97 * 113, depth = new Float32Array(n);
for (let i = 0; i < n; i++) depth[i] = i % 7 ? 0.5 + (i % 1000) / 300 : 0;
const baton = (p) => ({ depth, depthDtype: "float32", frames: 1, height: 97, width: 113, depthScale: 1,
  intrinsics: new Float32Array([500, 510, 56, 48]), poses: null, points: p, valid: new Uint8Array(n), impl: "fast" });
const pa = new Float32Array(3 * n), pb = new Float32Array(3 * n);
Promise.all([a.backproject(baton(pa)), b.backproject(baton(pb))]).then(() => {
  const same = Buffer.compare(Buffer.from(pa.buffer), Buffer.from(pb.buffer)) === 0;
  console.log(`node-gyp build (${a.variant}): ${same ? "identical to the cmake-js build" : "DIFFERS from the cmake-js build"}`);
  process.exit(same ? 0 : 1);
});' "$tmp/build/Release/sr3d_cpu.node" "$root/build/Release/sr3d_cpu.node"
