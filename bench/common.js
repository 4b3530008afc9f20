// What the benchmark scripts share: seeded inputs, medians, timing, the triad peak and the
// last-level cache size (rows whose working set fits it measure the cache, not DRAM).
'use strict';
const fs = require('fs');
const { performance } = require('perf_hooks');

/** Middle element of the sorted samples (the upper one for an even count). */
const median = (samples) => {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** Median milliseconds of `runs` calls of `fn` after `warm` untimed ones. */
async function timeIt(fn, runs, warm) {
  for (let i = 0; i < warm; i++) await fn();
  const t = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  return median(t);
}

/**
 * n seeded LCG values in [lo, hi); a fraction `invalid` of them are 0 instead (depth holes),
 * the others spread over the whole range.
 */
function rand(n, seed, lo, hi, Ctor = Float32Array, invalid = 0) {
  let a = seed >>> 0;
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) {
    a = (a * 1664525 + 1013904223) >>> 0;
    const r = a / 4294967296;
    out[i] = r < invalid ? 0 : lo + (hi - lo) * ((r - invalid) / (1 - invalid));
  }
  return out;
}

/** n seeded LCG token ids in [0, vocab) (the engine and peer benchmarks' prompts). */
function randIds(n, vocab, seed) {
  let a = seed >>> 0;
  const ids = new Array(n);
  for (let i = 0; i < n; i++) {
    a = (a * 1664525 + 1013904223) >>> 0;
    ids[i] = a % vocab;
  }
  return ids;
}

/** The STREAM-like triad a = b + 3c over 3 x 64 MiB on the kernels' thread pool, GB/s (median of `reps`). */
function triadPeak(addon, reps) {
  const n = 16 * 2 ** 20; // far beyond the caches
  const a = new Float32Array(n), b = rand(n, 1, 0, 1), c = rand(n, 2, 0, 1);
  addon.triad(a, b, c);
  const t = [];
  for (let i = 0; i < reps; i++) {
    const s = performance.now();
    addon.triad(a, b, c);
    t.push(performance.now() - s);
  }
  return (3 * 4 * n) / (median(t) / 1e3) / 1e9;
}

/** Bytes of the last-level cache (Linux sysfs; 32 MiB when unknown). */
const LLC = (() => {
  try {
    const m = /^(\d+)([KMG]?)/.exec(fs.readFileSync('/sys/devices/system/cpu/cpu0/cache/index3/size', 'utf8').trim());
    if (m) return Number(m[1]) * { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2]];
  } catch { /* not Linux, or no L3 entry */ }
  return 32 * 2 ** 20;
})();

// The benches load the compiled dist/: one older than a lib/ source would time yesterday's code
// (e.g. ignore an engine option it does not know yet). Exits with the fix instead.
function requireFreshDist(root) {
  const fs = require('fs');
  const path = require('path');
  const lib = path.join(root, 'lib'), built = path.join(root, 'dist', 'index.js');
  if (!fs.existsSync(lib)) return; // an installed package: dist/ is all there is
  if (process.env.SR3D_BENCH_DIST_OK === '1') return; // a copied tree (bench/gpu_full.sh): mtimes say nothing
  const newest = (dir) => fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = path.join(dir, e.name);
    return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? fs.statSync(p).mtimeMs : 0);
  }, 0);
  const src = newest(lib);
  if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < src) {
    console.error(`dist/ is older than lib/ (or missing): the bench would time stale code. Fix: npm run build:ts (in ${root})`);
    process.exit(2);
  }
}

module.exports = { median, timeIt, rand, randIds, triadPeak, LLC, requireFreshDist };
