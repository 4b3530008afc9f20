// The typed errors and how native rejections map onto them.
import { CudaError, CudaOutOfMemoryError, InternalError, InvalidArgumentError, invalidArgument, NativeLoadError, Sr3dError } from '../lib';
import { describeValue, fromNative } from '../lib/errors';

describe('errors', () => {
  it('invalidArgument has the one message shape', () => {
    const e = invalidArgument('a positive number', 'depthScale', -2);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e).toBeInstanceOf(Sr3dError);
    expect(e.message).toBe('Expected a positive number for depthScale but received -2');
    expect(e.code).toBe('SR3D_INVALID_ARGUMENT');
    expect(e.name).toBe('InvalidArgumentError');
  });

  it('describeValue names types and sizes', () => {
    expect(describeValue(new Uint16Array(7))).toBe('Uint16Array(7)');
    expect(describeValue('x')).toBe("'x' of type string");
    expect(describeValue([1, 2])).toBe('an array of length 2');
    expect(describeValue(NaN)).toBe('NaN');
    expect(describeValue(null)).toBe('null');
    expect(describeValue(new Map())).toBe('an object of type Map');
  });

  it('native CUDA rejections become CudaError with call, file, line and device, and keep the JS call site', () => {
    const site = new Error('site');
    const e = fromNative({ code: 'SR3D_CUDA', message: 'CUDA error cudaErrorMemoryAllocation (out of memory) in `cudaMalloc(&p, n)` at cuda_util.cu:40 on device 0',
      call: 'cudaMalloc(&p, n)', file: 'kernels/cuda/cuda_util.cu', line: 40, device: 0 }, site.stack);
    expect(e).toBeInstanceOf(CudaError);
    const c = e as CudaError;
    expect([c.call, c.file, c.line, c.device, c.code]).toEqual(['cudaMalloc(&p, n)', 'kernels/cuda/cuda_util.cu', 40, 0, 'SR3D_CUDA']);
    expect(c.stack).toContain('errors.test.ts');
    expect(c.stack!.split('\n')[0]).toBe(`CudaError: ${c.message}`);
  });

  it('native out-of-memory rejections become CudaOutOfMemoryError (a CudaError) with the bytes asked for and free', () => {
    const e = fromNative({ code: 'SR3D_CUDA_OUT_OF_MEMORY',
      message: 'CUDA out of memory on device 0: asked for 2.00 GiB (2147483648 bytes) in `cudaMalloc(&p, bytes)` with 0.50 GiB (536870912 bytes) free of 7.44 GiB. Fix: a smaller maxContext ...',
      call: 'cudaMalloc(&p, bytes)', file: 'kernels/cuda/cuda_util.h', line: 90, device: 0,
      requestedBytes: 2147483648, freeBytes: 536870912, totalBytes: 7988490240 });
    expect(e).toBeInstanceOf(CudaOutOfMemoryError);
    expect(e).toBeInstanceOf(CudaError);
    const c = e as CudaOutOfMemoryError;
    expect([c.code, c.name, c.call, c.device]).toEqual(['SR3D_CUDA_OUT_OF_MEMORY', 'CudaOutOfMemoryError', 'cudaMalloc(&p, bytes)', 0]);
    expect([c.requestedBytes, c.freeBytes, c.totalBytes]).toEqual([2147483648, 536870912, 7988490240]);
    expect(new CudaOutOfMemoryError('m', {}).freeBytes).toBe(-1);
  });

  it('other native codes map to their classes; foreign errors pass through', () => {
    expect(fromNative({ code: 'SR3D_INVALID_ARGUMENT', message: 'Expected x for y but received z' })).toBeInstanceOf(InvalidArgumentError);
    expect(fromNative({ code: 'SR3D_INTERNAL', message: 'bug' })).toBeInstanceOf(InternalError);
    const foreign = new RangeError('boom');
    expect(fromNative(foreign)).toBe(foreign);
    expect(new NativeLoadError('x').code).toBe('SR3D_NATIVE_LOAD');
  });
});
