#!/usr/bin/env node
'use strict';
const fail = (e) => {
  process.stderr.write(`sr3d: ${e && e.message ? e.message : e}\n`);
  process.exitCode = 1;
};
try {
  Promise.resolve(require('../dist/cli.js').main(process.argv.slice(2))).then((code) => {
    process.exitCode = code;
  }, fail);
} catch (e) {
  fail(e);
}
