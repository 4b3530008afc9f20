// The package surface: exports (CJS + ESM), buildInfo/devices, the CLI, binary selection.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as sr3d from '../lib';

const root = path.resolve(__dirname, '..');
const node = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });

describe('package', () => {
  it('buildInfo() reports version, CUDA and CPU facts of the loaded binary', () => {
    const b = sr3d.buildInfo();
    expect(b.version).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
    expect(typeof b.cuda.compiled).toBe('boolean');
    expect(b.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'sse2', 'neon', 'portable', 'scalar']).toContain(b.cpu.simd);
    expect(Array.isArray(b.cpu.features)).toBe(true);
    if (b.cpu.simd === 'avx2' || b.cpu.simd === 'avx512') expect(b.cpu.features).toContain('avx2');
    if (b.cpu.simd === 'neon') expect(b.cpu.features).toContain('asimd');
    expect(['cpu', 'cuda']).toContain(b.binary.variant);
    if (b.binary.variant === 'cpu') expect(b.cuda.compiled).toBe(false);
    else expect(b.cuda.archs).toEqual(expect.arrayContaining(['sm_75', 'sm_87', 'sm_90']));
  });

  it('exports every op of the API', () => {
    const ops = ['backproject', 'scenePoints', 'canonicalize', 'toMetric', 'toCanonical', 'poolPointsToPatches', 'sinusoidalEncode',
      'readImage', 'readDepth', 'planTiles', 'framePlan', 'candidateGrids', 'sampleFrames', 'resizeBicubic', 'tileImage',
      'tilePointMap', 'tileMask', 'boxToMask', 'box3dToMasks', 'stitchTiles', 'maskPool', 'buildInfo', 'devices',
      'setThreads', 'loadInfo', 'tensor', 'invalidArgument',
      // the model runtime and the pipeline
      'SR3D', 'loadCheckpoint', 'createEngine', 'writeTinyModel', 'loadTokenizer', 'renderChat', 'buildPrompt', 'spliceEmbeddings',
      'loadScene', 'sceneFromFrames', 'saveScene', 'importTum', 'parseRegionArg', 'resolveRegions', 'measure', 'writeOverlay',
      'SafetensorsFile', 'openWeights', 'writeSafetensors'];
    const api = sr3d as unknown as Record<string, unknown>;
    expect(ops.filter((k) => typeof api[k] !== 'function')).toEqual([]);
  });

  it('the index exports exactly the intended runtime names (internals stay in their modules)', () => {
    const intended = [
      // the model
      'SR3D', 'ChatSession', 'createEngine', 'Engine', 'nn', 'DEFAULT_MAX_CONTEXT',
      // the TensorRT-LLM backend of the language model
      'TrtllmError', 'readTrtllmEngineConfig', 'promptTableRequest',
      // errors
      'Sr3dError', 'InvalidArgumentError', 'CudaError', 'CudaOutOfMemoryError', 'NativeLoadError', 'InternalError', 'CheckpointError', 'SceneError',
      'RegionError', 'ModelError', 'TokenizerFileError', 'EngineBusyError', 'EngineDisposedError', 'RequestQueueFullError',
      'RequestAbortedError', 'invalidArgument',
      // checkpoints, tokenizer, prompt
      'loadCheckpoint', 'writeTinyModel', 'quantizeCheckpoint', 'SafetensorsFile', 'openWeights', 'writeSafetensors', 'loadTokenizer', 'renderChat',
      'buildPrompt', 'spliceEmbeddings',
      // scenes, regions, measurement, overlays
      'loadScene', 'sceneFromFrames', 'saveScene', 'sceneWorldPoints', 'importTum', 'TUM_INTRINSICS', 'parseRegionArg',
      'resolveRegions', 'measure', 'measurePoints', 'gatherRegionPoints', 'writeOverlay', 'renderOverlay', 'REGION_COLORS',
      'SCENE_LIMITS', 'createStreamingScene', 'StreamingScene',
      // evaluation and answer checks
      'evaluate', 'scoreAll', 'scoreLine', 'readBenchmark', 'readPredictions', 'formatReport', 'reportJson', 'parseLength',
      'parseNumber', 'meanRelativeAccuracy', 'crossCheck', 'metricQuestion', 'checkWarning',
      // kernels
      'backproject', 'scenePoints', 'canonicalize', 'toCanonical', 'toMetric', 'poolPointsToPatches', 'sinusoidalEncode',
      'candidateGrids', 'planTiles', 'framePlan', 'sampleFrames', 'resizeBicubic', 'tileImage', 'tilePointMap', 'tileMask',
      'boxToMask', 'box3dToMasks', 'stitchTiles', 'maskPool',
      // images, arrays, files, the binary
      'readImage', 'readDepth', 'readImageHeader', 'ImageSizeError', 'DEFAULT_MAX_IMAGE_PIXELS', 'defaultMaxImagePixels',
      'tensor', 'parseNpy', 'readNpy', 'encodeNpy', 'writeNpy', 'buildInfo', 'devices', 'setThreads',
      'version', 'loadInfo',
    ];
    expect(Object.keys(sr3d).sort()).toEqual([...intended].sort());
    // Engine state a conversation relies on is read-only from outside.
    for (const k of ['pendingToken', 'cacheEpoch', 'cachedPositions']) {
      const d = Object.getOwnPropertyDescriptor(sr3d.Engine.prototype, k);
      expect([k, typeof d?.get, d?.set]).toEqual([k, 'function', undefined]);
    }
    expect(typeof sr3d.SR3D.prototype[Symbol.asyncDispose]).toBe('function');
    expect(typeof sr3d.Engine.prototype[Symbol.asyncDispose]).toBe('function');
  });

  it('devices() lists usable GPUs (none on a machine without one)', () => {
    const d = sr3d.devices();
    expect(Array.isArray(d)).toBe(true);
    for (const x of d) expect(x.computeCapability).toMatch(/^\d+\.\d+$/);
    if (sr3d.loadInfo().variant === 'cpu') expect(d).toEqual([]);
  });

  it('setThreads validates and applies', async () => {
    const before = sr3d.buildInfo().cpu.threads;
    expect(sr3d.setThreads(1)).toBe(1);
    const r = await sr3d.backproject({ data: new Float32Array(12).fill(1), shape: [3, 4] }, { fx: 1, fy: 1, cx: 0, cy: 0 });
    expect(r.valid.data.every((v) => v === 1)).toBe(true);
    expect(sr3d.setThreads(0)).toBe(before);
    expect(() => sr3d.setThreads(-1)).toThrow(/^Expected an integer in \[0, 256\] \(0 = default\) for threads but received -1/);
  });

  describe('built package (dist/)', () => {
    beforeAll(() => {
      const r = spawnSync('npm', ['run', '-s', 'build:ts'], { cwd: root, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    });

    it('sr3d info and sr3d info --json', () => {
      const txt = node(['bin/sr3d.js', 'info']);
      expect(txt.status).toBe(0);
      expect(txt.stdout).toMatch(/^sr3d \d+\.\d+\.\d+/);
      expect(txt.stdout).toMatch(/cpu: +\d+ threads/);
      const js = node(['bin/sr3d.js', 'info', '--json']);
      const j = JSON.parse(js.stdout);
      expect(j.version).toBe(sr3d.version);
      expect(j.cuda).toHaveProperty('archs');
      expect(Array.isArray(j.devices)).toBe(true);
      const bad = node(['bin/sr3d.js', 'frobnicate']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/unknown command 'frobnicate'/);
    });

    it('CommonJS require and ESM import expose the same API', () => {
      const cjs = node(['-e', "const s=require('sr3d');console.log(typeof s.backproject, typeof s.buildInfo, s.InvalidArgumentError.name)"]);
      expect(cjs.stdout.trim()).toBe('function function InvalidArgumentError');
      const esm = node(['--input-type=module', '-e', "import s, {backproject, scenePoints, tileImage, maskPool} from 'sr3d';console.log(typeof backproject, typeof scenePoints, typeof tileImage, typeof maskPool, typeof s.canonicalize)"]);
      expect(esm.stderr).toBe('');
      expect(esm.stdout.trim()).toBe('function function function function function');
    });

    it('SR3D_DEVICE=cpu forces the CPU build; SR3D_DEVICE=cuda without a GPU is a NativeLoadError', () => {
      const cpu = node(['-e', "console.log(require('sr3d').loadInfo().variant)"], { SR3D_DEVICE: 'cpu' });
      expect(cpu.stdout.trim()).toBe('cpu');
      if (sr3d.devices().length === 0) {
        const cuda = node(['-e', "try{require('sr3d').buildInfo()}catch(e){console.log(e.name+'|'+e.message)}"], { SR3D_DEVICE: 'cuda' });
        expect(cuda.stdout).toMatch(/^NativeLoadError\|Could not load the sr3d native binary for /);
        expect(cuda.stdout).toMatch(/Possible solutions:\n {2}1\. /);
      }
      const dbg = node(['-e', "require('sr3d').buildInfo()"], { NODE_DEBUG: 'sr3d' });
      expect(dbg.stderr).toMatch(/SR3D \d+: loaded .*sr3d_(cpu|cuda)\.node/);
    });

    it('prebuilds are chosen by their tags (a glibc build is not loaded on musl)', () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-pre-'));
      for (const f of ['package.json', 'sources.json']) fs.copyFileSync(path.join(root, f), path.join(tmp, f));
      fs.cpSync(path.join(root, 'dist'), path.join(tmp, 'dist'), { recursive: true });
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(tmp, 'node_modules'));
      const pre = path.join(tmp, 'prebuilds', `${process.platform}-${process.arch}`);
      fs.mkdirSync(pre, { recursive: true });
      fs.copyFileSync(path.join(root, 'build', 'Release', 'sr3d_cpu.node'), path.join(pre, 'sr3d-cpu.glibc.node'));
      const script = "try{const i=require('./dist').loadInfo();console.log(i.variant+' '+require('path').basename(i.path))}catch(e){console.log(e.code)}";
      const glibc = spawnSync(process.execPath, ['-e', script], { cwd: tmp, encoding: 'utf8', env: { ...process.env, LIBC: 'glibc' } });
      expect(glibc.stdout.trim()).toBe('cpu sr3d-cpu.glibc.node');
      const musl = spawnSync(process.execPath, ['-e', script], { cwd: tmp, encoding: 'utf8', env: { ...process.env, LIBC: 'musl' } });
      expect(musl.stdout.trim()).toBe('SR3D_NATIVE_LOAD');
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    it('with no binary at all, loading fails with the platform and numbered fixes', () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-nobin-'));
      for (const f of ['package.json', 'sources.json']) fs.copyFileSync(path.join(root, f), path.join(tmp, f));
      fs.cpSync(path.join(root, 'dist'), path.join(tmp, 'dist'), { recursive: true });
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(tmp, 'node_modules'));
      const r = spawnSync(process.execPath, ['-e', "try{require('./dist').buildInfo()}catch(e){console.log(e.code);console.log(e.message)}"], { cwd: tmp, encoding: 'utf8' });
      expect(r.stdout).toMatch(/^SR3D_NATIVE_LOAD\n/);
      expect(r.stdout).toContain(`for ${process.platform}-${process.arch}`);
      expect(r.stdout).toContain('npm install-scripts approve sr3d && npm rebuild sr3d');
      expect(r.stdout).toContain('npx sr3d build');
      fs.rmSync(tmp, { recursive: true, force: true });
    });
  });
});
