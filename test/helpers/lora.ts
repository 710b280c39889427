import { writeGguf, type GgufTensor } from '../../src/model/gguf/writeGguf.js';
import { TEST_SHAPE } from '../../src/model/index.js';

/**
 * A LoRA adapter GGUF for the test model (llama.cpp's adapter layout: general.type "adapter",
 * adapter.type "lora", tensors <base>.lora_a [n_in, r] and <base>.lora_b [r, n_out]), written
 * with our own GGUF writer. Random, small: it changes the numbers, not the meaning.
 */
export function makeTestLora(file: string, rank = 4): void {
  const { nEmbd, nLayer } = TEST_SHAPE;
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.02;
  const fill = (n: number) => () => Float32Array.from({ length: n }, rand);
  const tensors: GgufTensor[] = [];
  for (let l = 0; l < nLayer; l++) {
    for (const name of ['attn_q', 'attn_output']) {
      tensors.push(
        { name: `blk.${l}.${name}.weight.lora_a`, dims: [nEmbd, rank], type: 'F32', fill: fill(nEmbd * rank) },
        { name: `blk.${l}.${name}.weight.lora_b`, dims: [rank, nEmbd], type: 'F32', fill: fill(rank * nEmbd) },
      );
    }
  }
  writeGguf(file, [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.type', { type: 'string', value: 'adapter' }],
    ['general.name', { type: 'string', value: 'docsift-test-lora' }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['adapter.lora.alpha', { type: 'f32', value: rank }],
  ], tensors);
}
