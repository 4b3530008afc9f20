#!/usr/bin/env node
// Writes dist/index.mjs: the ESM entry re-exporting the CommonJS build (one implementation,
// one loaded addon whichever way the package is imported).
'use strict';
const fs = require('fs');
const path = require('path');
const dist = path.resolve(__dirname, '..', 'dist');
const cjs = require(path.join(dist, 'index.js'));
const names = Object.keys(cjs).filter((k) => k !== 'default' && k !== '__esModule');
const body = [
  "import { createRequire } from 'module';",
  'const require = createRequire(import.meta.url);',
  "const cjs = require('./index.js');",
  ...names.map((n) => `export const ${n} = cjs.${n};`),
  'export default cjs;',
  '',
].join('\n');
fs.writeFileSync(path.join(dist, 'index.mjs'), body);
fs.writeFileSync(path.join(dist, 'index.d.mts'), "export * from './index.js';\nimport * as sr3d from './index.js';\nexport default sr3d;\n");
