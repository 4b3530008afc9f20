#!/usr/bin/env bash
# One command for a GPU machine with cmake, g++ and nvcc (Node not needed): build the
# standalone kernel test executable with CUDA, run the tests (Impl::kCuda vs the CPU
# reference), then the benchmarks. Writes $OUT/bench-gpu.json when OUT is set.
#   env SR3D_CUDA_ARCHS="90" bench/gpu.sh     # build only what this machine needs (faster)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
JOBS=$(nproc 2>/dev/null || echo 4)

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "nvcc not found" >&2; exit 1; }
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

timeout 120 cmake -S . -B "$BUILD" -DSR3D_KERNEL_TESTS_ONLY=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
timeout 600 cmake --build "$BUILD" --target sr3d_kernel_tests -j "$JOBS"
EXE="$BUILD/sr3d_kernel_tests"

echo "== tests"
status=0
timeout 300 "$EXE" >"$BUILD/tests.log" 2>&1 || status=$?
grep -E "^(CUDA|CPU-only|cpu threads)|^  FAIL|XPASS" "$BUILD/tests.log" || true
tail -n 1 "$BUILD/tests.log"
if [ -n "${OUT:-}" ]; then cp "$BUILD/tests.log" "$OUT/kernel-tests.log"; fi

echo "== bench"
json_args=()
if [ -n "${OUT:-}" ]; then json_args=(--json-out "$OUT/bench-gpu.json"); fi
timeout 300 "$EXE" --bench ${json_args[@]+"${json_args[@]}"}
exit "$status"
