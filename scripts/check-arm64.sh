#!/usr/bin/env bash
# linux-arm64 (Jetson's CPU side) from this x86-64 machine: cross-builds the standalone C++
# kernel tests with Debian's aarch64 toolchain and runs them under qemu-aarch64 (ctest uses the
# toolchain file's emulator). Timings under emulation mean nothing; results must be exact.
#   bash scripts/check-arm64.sh            all C++ tests except the real-size ones (slow under qemu)
#   SR3D_ARM64_TESTS=all bash ...          all of them
# Needs: apt-get install g++-aarch64-linux-gnu qemu-user-static
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
for tool in aarch64-linux-gnu-g++ qemu-aarch64-static cmake; do
  command -v "$tool" >/dev/null || { echo "check-arm64: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user-static cmake)"; exit 1; }
done
cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DSR3D_CUDA=OFF -DSR3D_KERNEL_TESTS_ONLY=ON >/dev/null
cmake --build build-arm64 -j"$(nproc)" >/dev/null
file_machine() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }
[ "$(file_machine build-arm64/sr3d_kernel_tests)" = 183 ] || { echo "check-arm64: the test executable is not AArch64"; exit 1; }
exclude="realsize"
[ "${SR3D_ARM64_TESTS:-}" = all ] && exclude="^$"
ctest --test-dir build-arm64 --output-on-failure -j"$(nproc)" -E "$exclude"
echo "check-arm64: the C++ kernel tests pass on aarch64 (qemu)"
