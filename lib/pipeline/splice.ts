/**
 * Stage 7, the splice (§5.3): image blocks (T projector rows + the end tokens) and region rows
 * put into the prompt's token embeddings.
 *   projected (nTiles, T, D) f32, regionEmbeddings (M, D) f32 → (L, D) f32, L <= maxLength.
 */
import type { Engine } from '../engine';
import { spliceEmbeddings } from '../prompt';
import type { BuiltPrompt, SplicedEmbeddings } from '../prompt';
import type { NdArray } from '../tensor';

export interface SpliceInput {
  prompt: BuiltPrompt;
  projected: NdArray<Float32Array>;
  regionEmbeddings: Float32Array | null;
  endTokenIds: number[];
  maxLength: number;
}

export function spliceStage(engine: Engine, s: SpliceInput): Promise<SplicedEmbeddings> {
  const [nTiles, T, D] = s.projected.shape;
  const blocks: Float32Array[] = [];
  for (let k = 0; k < nTiles; k++) blocks.push(s.projected.data.subarray(k * T * D, (k + 1) * T * D));
  return spliceEmbeddings({
    ids: s.prompt.ids, imagePositions: s.prompt.imagePositions, imageBlocks: blocks, endTokenIds: s.endTokenIds, tokensPerBlock: T,
    regionPositions: s.prompt.regionPositions, regionEmbeddings: s.regionEmbeddings ?? undefined, regionIndices: s.prompt.regionIndices,
    embed: async (ids) => (await engine.embedTokens(ids)).data, hidden: D, maxLength: s.maxLength,
  });
}
