/**
 * The plumbing every op module shares: which implementation runs (device / impl options),
 * calling the native addon with the caller's stack on errors, and preallocated outputs.
 */
import { constants as bufferConstants } from 'buffer';

import { fromNative, invalidArgument } from './errors';
import { loadInfo } from './native';
import type { ImplName, NativeAddon } from './native';

/** Where an op runs. */
export interface DeviceOptions {
  /**
   * `'cpu'`, `'cuda'` (needs the CUDA build and a GPU) or `'auto'` (CUDA when the loaded
   * binary has a usable GPU, else CPU). Defaults to `'auto'`.
   */
  device?: 'auto' | 'cpu' | 'cuda';
  /** CUDA device index for `device: 'cuda'`. Defaults to `0`. */
  deviceIndex?: number;
  /**
   * `'fast'` (multithreaded, vectorized) or `'reference'` (the plain single-threaded C++
   * loop the fast paths are verified against; CPU only). Defaults to `'fast'`.
   */
  impl?: 'fast' | 'reference';
}

/** The native `impl`/`device` baton fields for these options (validated). */
export function pickImpl(opts: DeviceOptions | undefined, addon: NativeAddon): { impl: ImplName; device?: number } {
  const device = opts?.device ?? 'auto';
  const impl = opts?.impl ?? 'fast';
  if (!['auto', 'cpu', 'cuda'].includes(device)) throw invalidArgument("'auto', 'cpu' or 'cuda'", 'device', device);
  if (impl !== 'fast' && impl !== 'reference') throw invalidArgument("'fast' or 'reference'", 'impl', impl);
  const idx = opts?.deviceIndex ?? 0;
  if (!Number.isInteger(idx) || idx < 0) throw invalidArgument('a non-negative integer', 'deviceIndex', idx);
  if (impl === 'reference') {
    if (device === 'cuda') throw invalidArgument("impl 'fast' with device 'cuda' (the reference is CPU-only)", 'impl', impl);
    return { impl: 'reference' };
  }
  if (device === 'cpu') return { impl: 'fast' };
  const gpus = addon.variant === 'cuda' ? addon.devices().devices.length : 0;
  if (device === 'cuda') {
    if (gpus === 0) {
      throw invalidArgument("device 'cpu' or 'auto' (no usable CUDA GPU: " + loadInfo().reason + ')', 'device', "'cuda'", true);
    }
    if (idx >= gpus) throw invalidArgument(`a device index below ${gpus}`, 'deviceIndex', idx);
    return { impl: 'cuda', device: idx };
  }
  return gpus > 0 ? { impl: 'cuda', device: idx } : { impl: 'fast' };
}

/** Runs a native call; a rejection becomes the matching typed error with this call site's stack. */
export async function callNative<T>(f: () => Promise<T>): Promise<T> {
  const site = new Error();
  try {
    return await f();
  } catch (e) {
    throw fromNative(e, site.stack);
  }
}

/** `given` when it is a `Ctor` of exactly `n` elements, a new one when undefined, else an error naming `name`. */
export function outArray<T extends Float32Array | Uint8Array>(
  given: unknown, Ctor: { new (n: number): T; name: string; BYTES_PER_ELEMENT: number }, n: number, name: string,
): T {
  if (given === undefined) return allocArray(Ctor, n, name);
  if (!(given instanceof Ctor) || given.length !== n) {
    throw invalidArgument(`a ${Ctor.name} of ${n} elements`, name, given);
  }
  return given;
}

/**
 * A fresh zeroed typed array of `n` elements, or a typed error naming `name` when the size is
 * past what this runtime can allocate (instead of V8's bare RangeError).
 */
export function allocArray<T>(Ctor: { new (n: number): T; name: string; BYTES_PER_ELEMENT: number }, n: number, name: string): T {
  const maxBytes = MAX_BUFFER_BYTES;
  if (!Number.isSafeInteger(n) || n < 0 || n * Ctor.BYTES_PER_ELEMENT > maxBytes) {
    throw invalidArgument(`sizes whose ${Ctor.name} fits one ArrayBuffer (at most ${maxBytes} bytes)`, name,
      `${n} elements (${n * Ctor.BYTES_PER_ELEMENT} bytes)`, true);
  }
  try {
    return new Ctor(n);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw invalidArgument(`sizes this process can allocate (a ${Ctor.name} of ${n} elements failed: ${e.message})`, name,
      `${n} elements`, true);
  }
}

/** The largest ArrayBuffer this runtime makes (V8's limit; Node reports it as buffer.constants.MAX_LENGTH). */
const MAX_BUFFER_BYTES: number = bufferConstants.MAX_LENGTH;
