#!/usr/bin/env bash
# Compile-only check of the TensorRT-LLM backend (native/trtllm.cc, issue 14) against
# TensorRT-LLM's real public headers, for each API version sr3d covers. TensorRT-LLM itself
# cannot be installed here, so nothing is linked or run: this proves only that the code compiles
# against each version's declarations (signatures, names, the SR3D_TRTLLM_API_MAIN branches).
#
#   scripts/check-trtllm.sh            check every version under .trtllm-headers/
#   scripts/check-trtllm.sh main       check one
#
# .trtllm-headers/<version>/ (git-ignored, never committed) holds the headers as
# include/tensorrt_llm/... and a COMMITS file naming the NVIDIA/TensorRT-LLM commit of each file;
# README.md ("TensorRT-LLM backend") says how they were fetched. Beyond them the compile needs
# CUDA's cuda_fp16.h / cuda_bf16.h (CUDA_INCLUDE, default /usr/local/cuda/include), Node's
# headers (NODE_INCLUDE, default: beside the node binary, then /usr/include/node) and
# node-addon-api.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
headers="${SR3D_TRTLLM_HEADERS:-$root/.trtllm-headers}"
cuda_inc="${CUDA_INCLUDE:-/usr/local/cuda/include}"
node_inc="${NODE_INCLUDE:-}"
if [ -z "$node_inc" ]; then
  for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node /usr/local/include/node; do
    if [ -f "$d/node_api.h" ]; then node_inc="$d"; break; fi
  done
fi
napi_inc="$(node -p "require('node-addon-api').include_dir")"
cxx="${CXX:-g++}"

fail() { echo "check-trtllm: $*" >&2; exit 1; }
[ -f "$cuda_inc/cuda_fp16.h" ] || fail "no cuda_fp16.h in $cuda_inc. Fix: set CUDA_INCLUDE to a CUDA toolkit's include folder."
[ -n "$node_inc" ] && [ -f "$node_inc/node_api.h" ] || fail "Node's headers (node_api.h) not found. Fix: set NODE_INCLUDE."
[ -d "$headers" ] || fail "$headers does not exist. Fix: fetch TensorRT-LLM's headers as README.md (TensorRT-LLM backend) says."

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  for d in "$headers"/*/; do versions+=("$(basename "$d")"); done
fi
[ ${#versions[@]} -gt 0 ] || fail "no versions under $headers."

status=0
for v in "${versions[@]}"; do
  inc="$headers/$v/include"
  exe="$inc/tensorrt_llm/executor/executor.h"
  [ -f "$exe" ] || fail "$exe is missing."
  # The same rule as CMakeLists.txt: PromptTuningConfig's inputTokenExtraIds marks the API after v0.12.
  if grep -q inputTokenExtraIds "$exe"; then api=1; else api=0; fi
  echo "== $v (SR3D_TRTLLM_API_MAIN=$api)"
  [ -f "$headers/$v/COMMITS" ] && sed 's/^/   /' "$headers/$v/COMMITS"
  if "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra \
      -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -DENABLE_BF16 \
      -DSR3D_TRTLLM_API_MAIN="$api" \
      -I"$inc" -I"$cuda_inc" -I"$node_inc" -I"$root/$napi_inc" \
      native/trtllm.cc; then
    echo "   native/trtllm.cc compiles against $v"
  else
    echo "   native/trtllm.cc FAILED against $v" >&2
    status=1
  fi
done
exit $status
