#!/usr/bin/env node
// npm run prebuild: builds the addon(s) with cmake-js once, then hands each variant to
// prebuildify, which stores it under prebuilds/<platform>-<arch>/ as sr3d-cpu.glibc.node
// (libc-tagged) and, when CUDA was built, sr3d-cuda.glibc.node. lib/native.ts picks between them at run time.
// On linux-x64 with Debian's aarch64 cross compiler (g++-aarch64-linux-gnu) it also cross-builds
// the CPU addon for linux-arm64 (Jetson, Graviton): prebuilds/linux-arm64/sr3d-cpu.glibc.node.
// SR3D_PREBUILD_ARM64=0 skips that; =1 makes a missing cross compiler an error.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const has = (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const run = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) process.exit(r.status || 1);
};

run(process.execPath, [path.join(root, 'scripts', 'build-native.js')]);
const prebuildify = path.join(root, 'node_modules', 'prebuildify', 'bin.js');
// prebuildify runs the stand-in builder with this folder as its working directory: it must exist
// (a fresh clone has none).
fs.mkdirSync(path.join(root, 'build', 'stage'), { recursive: true });
for (const variant of ['cpu', 'cuda']) {
  if (!fs.existsSync(path.join(root, 'build', 'Release', `sr3d_${variant}.node`))) {
    console.error(`[sr3d] no ${variant} build: skipping its prebuild`);
    continue;
  }
  run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', `--name=sr3d-${variant}`,
    `--node-gyp=${path.join(root, 'scripts', 'prebuild-stage.js')}`, '--cwd', path.join(root, 'build', 'stage'), '--out', root],
  { SR3D_PREBUILD_VARIANT: variant });
}
// linux-arm64 CPU addon, cross-compiled (N-API headers are the same on every arch; the addon
// links against nothing from Node). The CUDA variant cannot be cross-built here (no aarch64 CUDA
// libraries): on a Jetson, `npx sr3d build` builds it with JetPack's nvcc.
const arm64 = process.env.SR3D_PREBUILD_ARM64;
if (arm64 !== '0' && process.platform === 'linux' && process.arch === 'x64') {
  if (!has('aarch64-linux-gnu-g++') || !has('cmake')) {
    const msg = '[sr3d] no aarch64-linux-gnu-g++ / cmake: skipping the linux-arm64 prebuild (apt-get install g++-aarch64-linux-gnu)';
    if (arm64 === '1') { console.error(msg.replace('skipping', 'cannot make')); process.exit(1); }
    console.error(msg);
  } else {
    const out = path.join(root, 'build-arm64-addon');
    const nodeInclude = path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node');
    run('cmake', ['-S', root, '-B', out, `-DCMAKE_TOOLCHAIN_FILE=${path.join(root, 'cmake', 'aarch64-linux-gnu.cmake')}`,
      '-DSR3D_CUDA=OFF', `-DCMAKE_JS_INC=${nodeInclude}`, '-DCMAKE_BUILD_TYPE=Release']);
    run('cmake', ['--build', out, '-j', String(require('os').cpus().length), '--target', 'sr3d_cpu']);
    run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', '--name=sr3d-cpu', '--arch=arm64', '--platform=linux',
      `--node-gyp=${path.join(root, 'scripts', 'prebuild-stage.js')}`, '--cwd', path.join(root, 'build', 'stage'), '--out', root],
    { SR3D_PREBUILD_VARIANT: 'cpu', SR3D_PREBUILD_FROM: path.join(out, 'sr3d_cpu.node'), PREBUILD_STRIP_BIN: 'aarch64-linux-gnu-strip' });
  }
}
for (const tag of [`${process.platform}-${process.arch}`, 'linux-arm64']) {
  const dir = path.join(root, 'prebuilds', tag);
  if (fs.existsSync(dir)) console.error(`[sr3d] prebuilds/${tag}: ${fs.readdirSync(dir).join(', ')}`);
}
