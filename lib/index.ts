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
export type { BuildInfo, Device, DevicesOptions } from './info';
export { loadInfo } from './native';
export type { LoadInfo } from './native';
export * from './checkpoint';
export * from './tinymodel';
export * from './safetensors';
export * from './scene';
export * from './regions';
export { parseNpy, readNpy, encodeNpy, writeNpy } from './npy';
export type { NpyArray } from './npy';
export { importTum, TUM_INTRINSICS } from './commands/import';
export type { ImportTumOptions, ImportTumResult } from './commands/import';
export { measure, measurePoints, gatherRegionPoints } from './measure';
export type { MeasureResult, RegionMeasurement, PairMeasurement, MeasureOptions, MeasurePointsOptions, MeasureGeometryOptions, RegionMasks, RegionPoints } from './measure';
export { writeOverlay, renderOverlay, REGION_COLORS } from './overlay';
export type { OverlayRegion, OverlayOptions, OverlayLayout } from './overlay';
export * from './tokenizer';
export * from './prompt';
export { createEngine, Engine, EngineBusyError, EngineDisposedError } from './engine';
export type { EngineInfo, EngineOptions, GenerateOptions, MlpModule } from './engine';
/** Advanced: the engine's neural-network ops one at a time (tests, microbenchmarks). */
export * as nn from './nn';
export { SR3D, ChatSession, ModelError, MODEL_HELP } from './sr3d';
export type { ChatTurn, AskInput, AskResult, AskStage, AskTimings, GenerationOptions, LoadOptions, Prepared, PreparedDetails } from './sr3d';
