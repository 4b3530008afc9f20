#!/usr/bin/env node
// Builds the native addon(s) with cmake-js (CPU always; CUDA too when nvcc is found),
// falling back to node-gyp (CPU only) when cmake is missing.
//   node scripts/build-native.js               build (incremental)
//   node scripts/build-native.js --if-missing  the install script: do nothing when a usable
//                                              binary (local build or prebuild) already exists
//   node scripts/build-native.js --tests       also make sure the kernel test executable is built
// Environment: SR3D_BUILDER=node-gyp uses binding.gyp (CPU only); SR3D_CUDA=0 skips CUDA; SR3D_CUDA_ARCHS="75;80;87;90" (the default) picks architectures.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const args = new Set(process.argv.slice(2));

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}
function haveBinary() {
  const tag = `${process.platform}-${process.arch}`;
  const local = path.join(root, 'build', 'Release', 'sr3d_cpu.node');
  const pre = path.join(root, 'prebuilds', tag);
  return fs.existsSync(local) ||
    (fs.existsSync(pre) && fs.readdirSync(pre).some((f) => f.endsWith('.node')));
}
function run(cmd, argv) {
  console.error(`[sr3d] ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    console.error(`[sr3d] native build failed (${cmd} exited with ${r.status}).`);
    process.exit(r.status || 1);
  }
}

if (args.has('--if-missing') && haveBinary()) {
  console.error('[sr3d] native binary present; skipping the build');
  process.exit(0);
}

const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
// SR3D_BUILDER=node-gyp forces the node-gyp path (CPU only), e.g. to test binding.gyp.
const forceGyp = process.env.SR3D_BUILDER === 'node-gyp';
if (!forceGyp && has('cmake') && fs.existsSync(cmakeJs)) {
  // Configure every time (cheap) so options are explicit: a cached OFF from an earlier
  // SR3D_CUDA=0 build must not stick.
  const cuda = process.env.SR3D_CUDA === '0' ? '--CDSR3D_CUDA=OFF' : '--CDSR3D_CUDA=ON';
  run(process.execPath, [cmakeJs, 'configure', '--out', 'build', cuda]);
  run(process.execPath, [cmakeJs, 'build', '--out', 'build', cuda]);
} else {
  const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!fs.existsSync(gyp)) {
    console.error('[sr3d] neither cmake (+cmake-js) nor node-gyp is available: cannot build the addon.\n' +
      'Possible solutions:\n  1. Install cmake (>= 3.18) and a C++17 compiler, then `npm rebuild sr3d`.\n' +
      '  2. Install node-gyp (`npm i -g node-gyp`) and run `node-gyp rebuild` in the sr3d folder.');
    process.exit(1);
  }
  console.error(`[sr3d] ${forceGyp ? 'SR3D_BUILDER=node-gyp' : 'cmake not found'}: building the CPU addon with node-gyp (no CUDA)`);
  // npm passes its nodedir setting (local Node headers) to scripts; without it node-gyp
  // would try to download headers.
  const nodedir = process.env.npm_config_nodedir;
  run(process.execPath, [gyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])]);
}
