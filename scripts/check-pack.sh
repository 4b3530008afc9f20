#!/usr/bin/env bash
# The user's path, checked in CI: prebuilds → npm pack → install the tarball into a fresh
# project (npm 11 blocks dependency install scripts, so only the prebuilds can work) → run the
# README's main job (sr3d measure on the bundled cabinet) and an ask on a tiny model.
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
echo "check-pack: ok"
