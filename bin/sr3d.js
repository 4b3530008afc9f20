#!/usr/bin/env node
'use strict';
try {
  process.exitCode = require('../dist/cli.js').main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`sr3d: ${e && e.message ? e.message : e}\n`);
  process.exitCode = 1;
}
