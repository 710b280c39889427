import fs from 'node:fs';
import { makeLlamaModel } from '../../model/index.js';

/** Writes the tiny byte-vocabulary llama model the tests use; its text is meaningless. */
export async function makeTestModelCommand(file: string, options: { quant: 'f32' | 'q8_0' }): Promise<number> {
  makeLlamaModel(file, { biasOutput: true, type: options.quant === 'q8_0' ? 'Q8_0' : 'F32' });
  process.stderr.write(`wrote ${file} (${fs.statSync(file).size} bytes): a random-weight test model, not a real one\n`);
  return 0;
}
