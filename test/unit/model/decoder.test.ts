import { getLlama } from 'node-llama-cpp';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { ModelEngine, toGrammarSchema, type Answer, type ChatTurn } from '../../../src/model/index.js';
import { valueGrammar } from '../../../src/model/engine.js';
import { REPO, testModelPath } from '../../helpers/testEnv.js';

const config = loadConfig({ DOCSIFT_HOME: REPO });
const invoice = config.prompts.types.get('invoice')!.schema;
const logger = pino({ level: 'silent' });

/** A schema with an array of objects and bounds, so every branch of the walker runs. */
const schema = {
  type: 'object',
  properties: {
    number: { oneOf: [{ type: 'string', maxLength: 12 }, { type: 'null' }] },
    total: { type: ['number', 'null'] },
    lines: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'object', properties: { sku: { type: ['string', 'null'] }, qty: { type: ['integer', 'null'] } } } },
  },
};

function conversation(doc: string): ChatTurn[] {
  return [{ role: 'system', text: 'You extract fields from documents.' }, { role: 'user', text: `<document>${doc}</document>` }];
}

async function answer(engine: ModelEngine, turns: ChatTurn[], s: Record<string, unknown>): Promise<Answer> {
  return engine.withSequence((seq) => seq.generate(turns, { schema: s, maxTokens: 400, temperature: 0 }));
}

describe('schema-walking decoder (real llama.cpp on the test model)', () => {
  let on: ModelEngine;
  let off: ModelEngine;
  beforeAll(async () => {
    const base = { modelPath: testModelPath(), sequences: 1, contextSize: 2048, threads: 1, gpu: 'cpu' as const, logger };
    on = await ModelEngine.load(base);
    off = await ModelEngine.load({ ...base, jumpForward: false, prefixReuse: false });
  });
  afterAll(async () => {
    await on?.dispose();
    await off?.dispose();
  });

  it('writes JSON of the schema, forcing keys and braces and sampling only values', async () => {
    const a = await answer(on, conversation('Invoice A-1, total 12.50'), schema);
    const value = JSON.parse(a.text);
    expect(Object.keys(value)).toEqual(['number', 'total', 'lines']);
    expect(value.lines.length).toBeGreaterThanOrEqual(1); // minItems
    expect(value.lines.length).toBeLessThanOrEqual(2);
    expect(Object.keys(value.lines[0])).toEqual(['sku', 'qty']);
    expect(a.forcedTokens).toBeGreaterThan(0);
    expect(a.truncated).toBe(false);
    // One confidence per value the model wrote, a probability each.
    expect(Object.keys(a.fieldConfidence)).toEqual(expect.arrayContaining(['number', 'total', 'lines.0.sku', 'lines.0.qty']));
    for (const c of Object.values(a.fieldConfidence)) expect(c > 0 && c <= 1).toBe(true);
    expect(a.confidence).toBeGreaterThan(0);
  });

  it('needs far fewer decode steps than sampling every token, for the same valid answer', async () => {
    const turns = conversation('Invoice 42 from ACME GmbH');
    const fast = await answer(on, turns, invoice);
    const slow = await answer(off, turns, invoice);
    expect(Object.keys(JSON.parse(fast.text))).toEqual(Object.keys(JSON.parse(slow.text)));
    expect(slow.forcedTokens).toBe(0);
    expect(fast.generatedTokens * 2).toBeLessThan(slow.generatedTokens);
    expect(slow.fieldConfidence).toEqual({});
  });

  it('reuses the prefix a sequence holds: the system prompt across documents, the document across questions', async () => {
    const first = conversation('Receipt 1 from Bakery Ltd, paid 3.20');
    await answer(on, first, { type: 'string', enum: ['invoice', 'receipt'] });
    const second = conversation('Receipt 2 from Corner Shop, paid 9.99');
    const label = await answer(on, second, { type: 'string', enum: ['invoice', 'receipt'] });
    const systemTokens = on.countTokens('You extract fields from documents.');
    expect(label.reusedTokens).toBeGreaterThanOrEqual(systemTokens);
    // The follow-up question re-reads nothing: only the label's turn end and the question are new.
    const follow = await answer(on, [...second, { role: 'model', text: label.text }, { role: 'user', text: 'Extract the fields.' }], schema);
    expect(follow.reusedTokens).toBeGreaterThan(on.countTokens('Receipt 2 from Corner Shop, paid 9.99'));
    expect(follow.promptTokens).toBeLessThan(60);
    // Without reuse everything is evaluated every time.
    const cold = await answer(off, second, { type: 'string', enum: ['invoice', 'receipt'] });
    expect(cold.reusedTokens).toBe(0);
  });

  it('a failure inside a job is coded (OUT_OF_MEMORY for allocation failures) and leaves the sequence empty for the next job', async () => {
    const turns = conversation('Invoice R-7, total 3.00');
    await answer(on, turns, schema);
    expect((await answer(on, turns, schema)).reusedTokens).toBeGreaterThan(0); // the prefix is held
    // The error llama.cpp's CUDA backend raises when a decode cannot get GPU memory (no GPU here
    // to provoke it); thrown after a real decode so the sequence holds tokens when it fails.
    const cuda = 'ggml_backend_cuda_buffer_type_alloc_buffer: allocating 512.00 MiB on device 0: cudaMalloc failed: out of memory';
    await expect(on.withSequence(async (seq) => {
      await seq.generate(turns, { schema, maxTokens: 40, temperature: 0 });
      throw new Error(cuda);
    })).rejects.toMatchObject({ code: 'OUT_OF_MEMORY', retryable: true });
    const after = await answer(on, turns, schema);
    expect(after.reusedTokens).toBe(0); // nothing of the failed job's state is trusted
    expect(() => JSON.parse(after.text)).not.toThrow();
    await expect(on.withSequence(async () => { throw new Error('Eval has failed'); })).rejects.toMatchObject({ code: 'MODEL_ERROR', retryable: true });
  });

  it('value grammars drop node-llama-cpp\'s newline stop marker and number exponents', async () => {
    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
    try {
      for (const s of [{ type: ['number', 'null'] }, { oneOf: [{ type: 'string', maxLength: 5 }, { type: 'null' }] }, toGrammarSchema(invoice)]) {
        const gbnf = (await llama.createGrammarForJsonSchema(s as any)).grammar;
        const adapted = valueGrammar(gbnf);
        expect(adapted).not.toContain('"\\n\\n\\n\\n"');
        expect(adapted).not.toMatch(/\[eE\]/);
        await llama.createGrammar({ grammar: adapted }); // still a grammar llama.cpp accepts
      }
    } finally {
      await llama.dispose();
    }
  });
});
