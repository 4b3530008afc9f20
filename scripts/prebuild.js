#!/usr/bin/env node
// npm run prebuild: builds the addon(s) with cmake-js once, then hands each variant to
// prebuildify, which stores it under prebuilds/<platform>-<arch>/ as sr3d-cpu.glibc.node
// (libc-tagged) and, when CUDA was built, sr3d-cuda.glibc.node. lib/native.ts picks between them at run time.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
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
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
console.error(`[sr3d] prebuilds: ${fs.existsSync(dir) ? fs.readdirSync(dir).join(', ') : 'none'}`);
