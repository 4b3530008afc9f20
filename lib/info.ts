import * as fs from 'fs';
import * as path from 'path';

import { native, loadInfo, packageRoot } from './native';
import type { LoadInfo } from './native';

/** The package version. */
export const version: string = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;

export interface BuildInfo {
  version: string;
  /** Which binary is loaded and why (CUDA chosen only when a GPU is usable). */
  binary: LoadInfo;
  cuda: {
    /** Whether the loaded binary contains the CUDA kernels. */
    compiled: boolean;
    /** CUDA runtime version it was built with, e.g. `"13.0"` (null when not compiled). */
    version: string | null;
    /** Compiled architectures, e.g. `["sm_75", "sm_87", "sm_90"]`. */
    archs: string[];
  };
  cpu: {
    /** Worker threads of the CPU kernels (`SR3D_NUM_THREADS` overrides). */
    threads: number;
    /**
     * Vector ISA the fast CPU paths dispatch to on this machine: `"avx512"`, `"avx2"`, `"sse2"`,
     * `"neon"` (arm64: the hand-written NEON kernels), `"portable"` (arm64 with
     * `SR3D_CPU_ISA=portable`: the compiler-vectorized code only) or `"scalar"`.
     */
    simd: string;
    /**
     * Vector features this CPU has, detected at run time: x86-64 `sse2` `avx2` `fma` `avx512f`
     * `avx512vl`; arm64 `asimd` `fp16` `dotprod` `bf16` `sve`. Reported, not all used: the arm64
     * kernels need only `asimd`, as fp16 / dot-product / bf16 arithmetic would round differently.
     */
    features: string[];
    /**
     * ISA of the int8-activation kernels (`activations: 'int8'`): `"avx512vnni"`, `"avx2"`,
     * `"neon-dotprod"` (arm64 with the dot-product extension) or `"portable"`
     * (`SR3D_CPU_ISA=avx2|portable` caps it as the other fast paths).
     */
    int8Activations: string;
    /**
     * ISA of the bf16-activation kernels (`activations: 'bf16'`): `"avx512bf16"` (`vdpbf16ps`),
     * `"avx512f"` / `"avx2"` (the same bits as FMAs under DAZ / FTZ) or `"portable"`.
     */
    bf16Activations: string;
  };
}

/** What the loaded native binary was built with. */
export function buildInfo(): BuildInfo {
  const b = native().buildInfo();
  const v = b.cudaRuntimeVersion;
  return {
    version,
    binary: loadInfo(),
    cuda: {
      compiled: b.cudaCompiled,
      version: b.cudaCompiled ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : null,
      archs: b.cudaArchs ? b.cudaArchs.split(/[;,]/).filter(Boolean).map((a) => `sm_${a}`) : [],
    },
    cpu: { threads: b.cpuThreads, simd: b.simd, features: b.simdFeatures ?? [], int8Activations: b.int8Activations ?? 'portable', bf16Activations: b.bf16Activations ?? 'portable' },
  };
}

export interface Device {
  index: number;
  name: string;
  /** Bytes. */
  totalMemory: number;
  /** e.g. `"9.0"`. */
  computeCapability: string;
  multiprocessors: number;
  /** True on Jetson (Orin, Thor): the GPU shares DRAM with the CPU. */
  integrated: boolean;
  /** Host memory can be mapped into the GPU's address space (zero-copy). */
  canMapHostMemory: boolean;
  /**
   * The engine and the ops use mapped host memory on this GPU instead of copying inputs and
   * outputs (zero copy): by default on integrated GPUs (Jetson) only; `SR3D_ZERO_COPY=0` turns
   * it off, `SR3D_ZERO_COPY=1` on for any GPU that can map host memory (a test of the path:
   * slow over PCIe).
   */
  zeroCopy: boolean;
  /** Free device memory in bytes (on Jetson: the pool shared with the CPU); only with `{ freeMemory: true }`. */
  freeMemory?: number;
}

/** Options of {@link devices}. */
export interface DevicesOptions {
  /**
   * Also report each GPU's free memory. This creates each GPU's CUDA context (hundreds of MB on
   * a discrete GPU until the process exits), so it is off unless asked for. Defaults to `false`.
   */
  freeMemory?: boolean;
}

/** The CUDA GPUs this process can use (empty with the CPU build or without a GPU). */
export function devices(opts: DevicesOptions = {}): Device[] {
  const n = native();
  return n.variant === 'cuda' ? n.devices(opts.freeMemory === true).devices : [];
}

/** Sets the CPU worker thread count (0 = default: `SR3D_NUM_THREADS` or all cores). Returns the new count. */
export function setThreads(n: number): number {
  return native().setThreads(n);
}
