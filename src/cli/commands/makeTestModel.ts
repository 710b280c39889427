import fs from 'node:fs';
import { makeLlamaModel, readHfTokenizer } from '../../model/index.js';

/**
 * Writes the tiny random-weight llama model the tests use; its text is meaningless. With
 * --tokenizer it carries a real tokenizer (a Hugging Face tokenizer.json + tokenizer_config.json
 * folder), so prompts, chat template and token counts are those of the real model.
 */
export async function makeTestModelCommand(file: string, options: { quant: 'f32' | 'q8_0'; tokenizer?: string; pre: string }): Promise<number> {
  const tokenizer = options.tokenizer ? readHfTokenizer(options.tokenizer, options.pre) : undefined;
  makeLlamaModel(file, { biasOutput: true, type: options.quant === 'q8_0' || tokenizer ? 'Q8_0' : 'F32', ...(tokenizer ? { tokenizer } : {}) });
  process.stderr.write(`wrote ${file} (${fs.statSync(file).size} bytes): a random-weight test model, not a real one\n`);
  return 0;
}
