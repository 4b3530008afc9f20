#!/usr/bin/env bash
# The whole GPU check in one command, for a lent GPU machine that has cmake + nvcc but no Node:
#   1. the JavaScript API on the CUDA binary (bench/gpu_node.js: CUDA engine vs CPU engine, and
#      `ask` on device 'cuda' vs 'cpu'), then the engine benchmark's CUDA rows;
#   2. every C++ test executable built with nvcc (Impl::kCuda vs the CPU reference, the CUDA
#      engine vs the CPU engine), then their CUDA benchmark rows.
# Needs a carried folder .gpu/ with node.xz (this machine's node, xz-compressed),
# node_modules.tar (the runtime dependencies), dist/ and sr3d_{cpu,cuda}.node (see
# bench/README.md, "GPU machines"; scripts/prepare-gpu-carry.sh makes it). Logs go to $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sr3d-gpu-out}; mkdir -p "$OUT"
export PATH="/usr/local/cuda/bin:$PATH"
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
if [ -f .gpu/node.xz ]; then
  xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
  tar xf .gpu/node_modules.tar -C node_modules 2>/dev/null || { mkdir -p node_modules && tar xf .gpu/node_modules.tar -C node_modules; }
  rm -rf dist && cp -r .gpu/dist dist
  mkdir -p build/Release && cp .gpu/*.node build/Release/
  echo "== node $(/tmp/node --version): bench/gpu_node.js"
  timeout 90 /tmp/node bench/gpu_node.js 2>&1 | tee "$OUT/gpu_node.log" || status=1
  echo "== fidelity vs Hugging Face transformers (bench/fidelity): our CUDA engine, then our CPU engine"
  for dev in cuda cpu; do
    timeout 40 /tmp/node bench/fidelity/dump.js /tmp/fid-$dev --device $dev && timeout 60 python3 bench/fidelity/hf_check.py /tmp/fid-$dev 2>&1 | grep -v Warning | tee -a "$OUT/fidelity.log" || status=1
  done
  echo "== bench/engine.js (CUDA + CPU rows, quick)"
  timeout 70 /tmp/node bench/engine.js --quick --gpu-gbps 2990 2>&1 | tee "$OUT/engine.log" || status=1
fi
echo "== C++ tests with nvcc"
BUILD=build-gpu
timeout 200 cmake -S . -B "$BUILD" -DSR3D_KERNEL_TESTS_ONLY=ON -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  timeout 300 cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
for EXE in "$BUILD"/sr3d_*_tests; do
  log="$BUILD/$(basename "$EXE").log"
  timeout 120 "$EXE" >"$log" 2>&1 || status=1
  { echo "== $(basename "$EXE")"; cat "$log"; } >>"$OUT/tests.log"
  echo "$(basename "$EXE"): $(tail -n 1 "$log")"
  grep -E "^  FAIL" "$log" | head -5
done
for EXE in "$BUILD"/sr3d_*_tests; do
  timeout 120 "$EXE" --bench --device cuda 2>&1 | grep -E "cuda|^op" | tee -a "$OUT/bench_cuda.log"
done
exit $status
