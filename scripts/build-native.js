#!/usr/bin/env node
// Builds the native addon(s) with cmake-js (CPU always; CUDA too when nvcc is found),
// falling back to node-gyp (CPU only) when cmake is missing.
//   node scripts/build-native.js               build (incremental)
//   node scripts/build-native.js --if-missing  the install script: do nothing when a usable
//                                              binary (local build or prebuild) already exists
//   node scripts/build-native.js --tests       also make sure the kernel test executable is built
// Environment: SR3D_BUILDER=node-gyp uses binding.gyp (CPU only); SR3D_CUDA=0 skips CUDA; SR3D_CUDA_ARCHS="75;80;87;90" (the default) picks architectures.
// Without cmake-js (an installed package: it is a dev dependency) plain cmake builds with Node's headers.
// nvcc is looked for on PATH, then CUDACXX, $CUDA_HOME/bin and /usr/local/cuda/bin (Jetson).
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
// Node's own headers (official Node builds ship them beside the binary: <prefix>/include/node;
// Debian's libnode-dev: /usr/include/node). Plain cmake needs them where cmake-js is absent,
// as in an installed package (cmake-js is a dev dependency).
function nodeHeaders() {
  const dirs = [path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
  if (process.env.npm_config_nodedir) dirs.unshift(path.join(process.env.npm_config_nodedir, 'include', 'node'));
  return dirs.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
}
// nvcc is often installed but not on PATH (Jetson: /usr/local/cuda/bin).
function findNvcc() {
  if (process.env.SR3D_CUDA === '0') return null;
  if (has('nvcc')) return 'nvcc';
  const cands = [process.env.CUDACXX, process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin', 'nvcc'), '/usr/local/cuda/bin/nvcc'];
  return cands.find((c) => c && fs.existsSync(c)) || null;
}
// SR3D_BUILDER=node-gyp forces the node-gyp path (CPU only), e.g. to test binding.gyp.
const forceGyp = process.env.SR3D_BUILDER === 'node-gyp';
const cudaFlag = process.env.SR3D_CUDA === '0' ? 'OFF' : 'ON';
const nvcc = findNvcc();
if (cudaFlag === 'ON') {
  console.error(nvcc ? `[sr3d] CUDA: building the CUDA addon too with ${nvcc} (SR3D_CUDA=0 skips it; SR3D_CUDA_ARCHS picks archs)`
    : '[sr3d] CUDA: nvcc not found (not on PATH, no CUDACXX, no /usr/local/cuda/bin/nvcc): building the CPU addon only. ' +
      'On a Jetson: export PATH=/usr/local/cuda/bin:$PATH and run `npx sr3d build` again.');
}
const env = nvcc && nvcc !== 'nvcc' ? { CUDACXX: nvcc } : {};
function runEnv(cmd, argv) {
  console.error(`[sr3d] ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`[sr3d] native build failed (${cmd} exited with ${r.status}).` +
      (nvcc ? ' If the CUDA part failed, SR3D_CUDA=0 builds the CPU addon alone.' : ''));
    process.exit(r.status || 1);
  }
}
if (!forceGyp && has('cmake') && fs.existsSync(cmakeJs)) {
  // Configure every time (cheap) so options are explicit: a cached OFF from an earlier
  // SR3D_CUDA=0 build must not stick.
  runEnv(process.execPath, [cmakeJs, 'configure', '--out', 'build', `--CDSR3D_CUDA=${cudaFlag}`]);
  runEnv(process.execPath, [cmakeJs, 'build', '--out', 'build', `--CDSR3D_CUDA=${cudaFlag}`]);
} else if (!forceGyp && has('cmake') && nodeHeaders()) {
  // An installed package: plain cmake with Node's headers (N-API needs nothing else; the addon
  // links against nothing from Node on Linux). This is `npx sr3d build` on a Jetson.
  const out = path.join(root, 'build');
  runEnv('cmake', ['-S', root, '-B', out, `-DSR3D_CUDA=${cudaFlag}`, `-DCMAKE_JS_INC=${nodeHeaders()}`, '-DCMAKE_BUILD_TYPE=Release',
    `-DSR3D_TESTS=${args.has('--tests') ? 'ON' : 'OFF'}`,
    `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${path.join(out, 'Release')}`]);
  runEnv('cmake', ['--build', out, '-j', String(require('os').cpus().length)]);
} else {
  const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!fs.existsSync(gyp)) {
    const missing = [!has('cmake') && 'cmake (>= 3.18)', has('cmake') && !nodeHeaders() && "Node's C headers (include/node/node_api.h beside the node binary)"].filter(Boolean);
    console.error(`[sr3d] cannot build the addon: missing ${missing.join(' and ') || 'a build tool'}.\n` +
      'Possible solutions:\n  1. Install cmake (>= 3.18) and a C++17 compiler (Debian/Ubuntu/JetPack: apt-get install cmake g++), then `npx sr3d build`.\n' +
      "  2. Use a Node from nodejs.org (it ships its headers) or install them (Debian: apt-get install libnode-dev).\n" +
      '  3. Install node-gyp (`npm i -g node-gyp`) and run `node-gyp rebuild` in the sr3d folder (CPU only).');
    process.exit(1);
  }
  console.error(`[sr3d] ${forceGyp ? 'SR3D_BUILDER=node-gyp' : 'cmake not found'}: building the CPU addon with node-gyp (no CUDA)`);
  // npm passes its nodedir setting (local Node headers) to scripts; without it node-gyp
  // would try to download headers.
  const nodedir = process.env.npm_config_nodedir;
  run(process.execPath, [gyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])]);
}
