/**
 * The prompt stage, run first: VILA's qwen2 template with the image and region placeholders,
 * checked against the context so a bad question or too long a prompt fails before any heavy work.
 */
import type { Checkpoint } from '../checkpoint_types';
import { ModelError } from '../errors';
import { buildPrompt } from '../prompt';
import type { BuiltPrompt } from '../prompt';
import type { Sr3dTokenizer } from '../tokenizer';

export interface PromptInput {
  question: string;
  system?: string;
  regions: number;
  nTiles: number;
  mode: 'tiles' | 'frames';
  /** The engine's KV-cache capacity. */
  maxContext: number;
}

export interface PromptOutput {
  prompt: BuiltPrompt;
  /** The tokens after each image block (`image_end_tokens`, none for NVILA-Lite). */
  endTokenIds: number[];
  /** The most positions the spliced sequence may take. */
  maxLength: number;
}

export function promptStage(ckpt: Checkpoint, tokenizer: Sr3dTokenizer, p: PromptInput): PromptOutput {
  const { nTiles, mode } = p;
  const T = ckpt.projector.config.tokensPerTile;
  const prompt = buildPrompt(tokenizer, { images: nTiles, mode, question: p.question, regions: p.regions, system: p.system });
  const endText = ckpt.config.imageEndTokens;
  const endTokenIds = endText ? tokenizer.encode(endText) : [];
  const maxLength = Math.min(ckpt.config.modelMaxLength, p.maxContext);
  const promptLength = prompt.ids.length - nTiles + nTiles * (T + endTokenIds.length);
  if (promptLength > maxLength) {
    const what = mode === 'tiles' ? `${nTiles} tiles` : `${nTiles} frames`;
    throw new ModelError(`Expected a prompt of at most ${maxLength} positions (the model's context) but received ${promptLength} ` +
      `(${what} × ${T + endTokenIds.length} + ${prompt.ids.length - nTiles} text tokens). ` +
      `Fix: ${mode === 'frames' ? 'feed fewer frames (maxFrames)' : 'use a smaller image (fewer tiles)'} or a shorter question` +
      `${p.maxContext < ckpt.config.modelMaxLength ? `, or load with a larger maxContext (up to ${ckpt.config.modelMaxLength})` : ''}.`);
  }
  return { prompt, endTokenIds, maxLength };
}
