#!/usr/bin/env node
// Stand-in for node-gyp under prebuildify (see scripts/prebuild.js): exposes only the
// requested, already built variant as <stage>/build/Release/sr3d-<variant>.node.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
const variant = process.env.SR3D_PREBUILD_VARIANT;
const out = path.join(root, 'build', 'stage', 'build', 'Release');
fs.rmSync(path.join(root, 'build', 'stage'), { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
// SR3D_PREBUILD_FROM: a binary built elsewhere (the cross-compiled linux-arm64 addon).
const from = process.env.SR3D_PREBUILD_FROM || path.join(root, 'build', 'Release', `sr3d_${variant}.node`);
fs.copyFileSync(from, path.join(out, `sr3d-${variant}.node`));
