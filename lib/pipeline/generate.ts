/**
 * Stage 8, generation: the spliced embeddings prefilled, then tokens decoded and streamed as
 * text (never half a UTF-8 character).
 */
import type { Engine, StopReason } from '../engine';
import type { AskStage, GenerationOptions } from '../model_types';
import type { Sr3dTokenizer } from '../tokenizer';

export interface GenerateInput {
  /** (n, D) f32 prompt embeddings. */
  embeddings: Float32Array;
  n: number;
  hidden: number;
  /** Continue the KV cache (a chat's next turn) instead of starting over. */
  append: boolean;
}

export interface Generated {
  text: string;
  tokens: number[];
  stopReason: StopReason;
  /** ms until the first token (prefill). */
  prefill: number;
  /** ms of the remaining tokens. */
  decode: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** What generates: sr3d's {@link Engine}, or a backend bound to the request (TensorRT-LLM, lib/llm/trtllm.ts). */
export type TokenGenerator = Pick<Engine, 'generate'>;

export async function generateText(engine: TokenGenerator, tokenizer: Sr3dTokenizer, input: GenerateInput,
  gen: GenerationOptions & { onProgress?: (stage: AskStage, message: string) => void }): Promise<Generated> {
  const { onToken, maxNewTokens, temperature, topP, topK, seed, signal } = gen;
  const dec = tokenizer.createStreamDecoder({ skipSpecialTokens: true });
  const tokens: number[] = [];
  let text = '';
  const t0 = now();
  let tFirst = 0;
  const stream = engine.generate({ data: input.embeddings, shape: [input.n, input.hidden] },
    { maxNewTokens, temperature, topP, topK, seed, signal, stopTokenIds: tokenizer.stopTokenIds, append: input.append });
  for await (const id of stream) {
    if (tokens.length === 0) {
      tFirst = now();
      gen.onProgress?.('decode', 'decode');
    }
    tokens.push(id);
    const piece = dec.push(id);
    text += piece;
    if (piece && onToken) onToken(piece, id);
  }
  const tail = dec.flush();
  if (tail) {
    text += tail;
    if (onToken) onToken(tail, -1);
  }
  const tEnd = now();
  if (tokens.length === 0) tFirst = tEnd;
  // The loop above never breaks, so the stream always ends on its own and sets its reason.
  return { text, tokens, stopReason: stream.stopReason ?? 'stop', prefill: tFirst - t0, decode: tEnd - tFirst };
}
