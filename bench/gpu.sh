#!/usr/bin/env bash
# One command for a GPU machine with cmake, g++ and nvcc (Node not needed): build the
# standalone kernel test executable with CUDA, run the tests (Impl::kCuda vs the CPU
# reference), then the benchmarks. Writes $OUT/bench-<exe>.json and logs when OUT is set.
#   env SR3D_CUDA_ARCHS="90" bench/gpu.sh     # build only what this machine needs (faster)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
JOBS=$(nproc 2>/dev/null || echo 4)

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "nvcc not found" >&2; exit 1; }
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

timeout 120 cmake -S . -B "$BUILD" -DSR3D_KERNEL_TESTS_ONLY=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
timeout 600 cmake --build "$BUILD" -j "$JOBS"
# Every test/bench executable (one per tests_cpp/*.cc): tests first (Impl::kCuda vs the CPU
# reference), then the benchmarks.
status=0
for EXE in "$BUILD"/sr3d_*_tests; do
  [ -x "$EXE" ] || continue
  name=$(basename "$EXE")
  echo "== $name: tests"
  timeout 300 "$EXE" >"$BUILD/$name.log" 2>&1 || status=$?
  grep -E "^(CUDA|CPU-only|cpu threads)|^  FAIL|XPASS" "$BUILD/$name.log" || true
  tail -n 1 "$BUILD/$name.log"
  if [ -n "${OUT:-}" ]; then cp "$BUILD/$name.log" "$OUT/$name.log"; fi
done
for EXE in "$BUILD"/sr3d_*_tests; do
  [ -x "$EXE" ] || continue
  name=$(basename "$EXE")
  echo "== $name: bench"
  json_args=()
  if [ -n "${OUT:-}" ]; then json_args=(--json-out "$OUT/bench-$name.json"); fi
  timeout 300 "$EXE" --bench ${json_args[@]+"${json_args[@]}"} || status=$?
done
exit "$status"
