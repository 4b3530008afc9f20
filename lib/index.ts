/**
 * sr3d — SR-3D (3D-aware region-prompted VLM) inference over native C++/CUDA kernels.
 *
 * The public API, exported by name on purpose (test/package.test.ts lists the runtime names);
 * helpers shared between modules stay in their modules.
 * @packageDocumentation
 */

// ---- the model ----------------------------------------------------------------------------
export { SR3D } from './sr3d';
export { ChatSession } from './chat';
export type { ChatTurn } from './chat';
export type {
  AskInput, AskResult, AskStage, AskTimings, GenerationOptions, LoadOptions, Prepared, PreparedDetails, StreamDetails,
} from './model_types';
export { createEngine, Engine, DEFAULT_MAX_CONTEXT } from './engine';
export type { EngineInfo, EngineOptions, GenerateOptions, GenerationStream, MlpModule, StopReason } from './engine';
export type { Activations } from './validate';
export { TrtllmError, readTrtllmEngineConfig } from './llm/trtllm';
export type { LlmBackendOptions, TrtllmEngineConfig } from './llm/trtllm';
export { promptTableRequest } from './llm/trtllm_request';
export type { PromptTableInput, PromptTableRequest, TrtllmDtype } from './llm/trtllm_request';
/** Advanced: the engine's neural-network ops one at a time (tests, microbenchmarks). */
export * as nn from './nn';

// ---- errors -------------------------------------------------------------------------------
export {
  Sr3dError, InvalidArgumentError, CudaError, CudaOutOfMemoryError, NativeLoadError, InternalError, CheckpointError, SceneError, RegionError,
  ModelError, TokenizerFileError, EngineBusyError, EngineDisposedError, RequestQueueFullError, RequestAbortedError,
  invalidArgument,
} from './errors';

// ---- checkpoints, tokenizer, prompt -------------------------------------------------------
export { loadCheckpoint } from './checkpoint';
export type {
  Checkpoint, LlmConfig, ProjectorConfig, RegionExtractorConfig, SpatialPeConfig, VilaConfig, VisionConfig,
  WeightDType, WeightInfo, WeightSet, WeightTensor,
} from './checkpoint_types';
export { writeTinyModel } from './tinymodel';
export { quantizeCheckpoint } from './quantize_checkpoint';
export type { QuantizeOptions, QuantizeResult } from './quantize_checkpoint';
export type { TinyModelInfo, TinyModelOptions } from './tinymodel';
export { SafetensorsFile, openWeights, writeSafetensors } from './safetensors';
export type { TensorSpec } from './safetensors';
export { loadTokenizer } from './tokenizer';
export type { Sr3dTokenizer, TokenizerOptions, DecodeOptions, StreamDecoder } from './tokenizer';
export { renderChat, buildPrompt, spliceEmbeddings } from './prompt';
export type { ChatMessage, RenderChatOptions, BuildPromptOptions, BuiltPrompt, SpliceInput, SplicedEmbeddings } from './prompt';

// ---- scenes, regions, measurement, overlays -----------------------------------------------
export { loadScene, sceneFromFrames, saveScene, sceneWorldPoints, SCENE_LIMITS } from './scene';
export type { Scene, SceneFrame, SceneFrameInput, SceneOptions, SceneManifest, ManifestFrame } from './scene';
export { importTum, TUM_INTRINSICS } from './tum';
export type { ImportTumOptions, ImportTumResult } from './tum';
export { parseRegionArg, resolveRegions } from './regions';
export type { RegionSpec, BoxRegion, MaskRegion, MultiMaskRegion, Box3dRegion, ResolvedRegion, ResolveRegionsOptions } from './regions';
export { measure, measurePoints, gatherRegionPoints } from './measure';
export type { MeasureResult, RegionMeasurement, PairMeasurement, MeasureOptions, MeasurePointsOptions, MeasureGeometryOptions, RegionMasks, RegionPoints } from './measure';
export { writeOverlay, renderOverlay, REGION_COLORS } from './overlay';
export type { OverlayRegion, OverlayOptions, OverlayLayout } from './overlay';
export { createStreamingScene, StreamingScene } from './streaming';
export type {
  StreamingSceneOptions, KeyframeRule, StreamFrameInput, StreamFrame, AddFrameResult, StreamFrameRef, StreamRegionSpec, StreamBoxRegion, StreamMaskRegion,
} from './streaming';

// ---- evaluation and answer checks ---------------------------------------------------------
export { evaluate, scoreAll, scoreLine, readBenchmark, readPredictions, formatReport, reportJson, parseLength, parseNumber, meanRelativeAccuracy } from './eval';
export type { EvalItem, EvalPrediction, EvalReport, EvalType, EvaluateOptions, EvalModel, LineScore, TypeSummary } from './eval';
export { crossCheck, metricQuestion, checkWarning } from './check';
export type { AnswerCheck, CheckedQuantity } from './check';

// ---- kernels: geometry, tiling, regions ---------------------------------------------------
export { backproject, scenePoints, canonicalize, toCanonical, toMetric, poolPointsToPatches, sinusoidalEncode } from './geometry';
export type {
  DeviceOptions, Intrinsics, Pose, PointsOut, BackprojectOptions, CanonicalMode, CanonicalizeOptions, CanonicalTransform,
  BackprojectResult, CanonicalizeResult, ScenePointsResult, ScenePointsOptions, PoolOptions, PoolResult, SinusoidalOptions,
} from './geometry';
export { candidateGrids, planTiles, framePlan, sampleFrames, resizeBicubic, tileImage, tilePointMap, tileMask } from './tiling';
export type { TilePlan, PlanTilesOptions, FramePlanOptions, ResizeOptions, TileOptions } from './tiling';
export { boxToMask, box3dToMasks, stitchTiles, maskPool } from './region';
export type { Box2d, Box3d, Box3dMasksOptions, Box3dMasksResult, StitchPlan, StitchOptions, MaskPoolOptions } from './region';

// ---- images, arrays, files, the binary ----------------------------------------------------
export { readImage, readDepth, readImageHeader, ImageSizeError, DEFAULT_MAX_IMAGE_PIXELS, defaultMaxImagePixels } from './image';
export type { ImageSource, ReadImageOptions, ImageHeader } from './image';
export { tensor } from './tensor';
export type { TensorLike, TypedArray, NdArray, DType } from './tensor';
export { parseNpy, readNpy, encodeNpy, writeNpy } from './npy';
export type { NpyArray } from './npy';
export { buildInfo, devices, setThreads, version } from './info';
export type { BuildInfo, Device, DevicesOptions } from './info';
export { loadInfo } from './native';
export type { LoadInfo } from './native';
