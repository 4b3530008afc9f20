/**
 * sr3d — SR-3D (3D-aware region-prompted VLM) inference over native C++/CUDA kernels.
 * @packageDocumentation
 */
export * from './errors';
export * from './geometry';
export { tensor } from './tensor';
export * from './tiling';
export * from './region';
export { readImage, readDepth } from './image';
export type { ImageSource } from './image';
export type { TensorLike, TypedArray, NdArray, DType } from './tensor';
export { buildInfo, devices, setThreads, version } from './info';
export type { BuildInfo, Device } from './info';
export { loadInfo } from './native';
export type { LoadInfo } from './native';
