/** The CLI's text about model folders: where weights come from, and whether a folder is one. */
import * as fs from 'fs';
import * as path from 'path';

/** Where NVILA-Lite-8B weights come from and how to make a tiny test model (for CLI messages). */
export const MODEL_HELP = [
  'No model given: pass --model <dir> or set SR3D_MODEL.',
  'A model folder is in the NVILA/VILA layout (config.json, llm/, vision_tower/, mm_projector/), plus SR-3D\'s spatial_pe/ and region_extractor/.',
  '  - NVILA-Lite-8B (the public base, no 3D PE or region extractor): download Efficient-Large-Model/NVILA-Lite-8B from Hugging Face',
  '    on a machine with internet access, e.g. `huggingface-cli download Efficient-Large-Model/NVILA-Lite-8B --local-dir nvila-lite-8b`.',
  '  - A tiny random test model in the same layout (answers are noise, the whole pipeline runs): `sr3d tiny-model ./tiny-sr3d`,',
  '    then `sr3d ask examples/data/tum_fr3_cabinet --model ./tiny-sr3d "What is in the scene?"`.',
].join('\n');

/** Whether `dir` looks like a checkpoint folder (has config.json). */
export function isCheckpointDir(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'config.json')).isFile();
  } catch {
    return false;
  }
}
