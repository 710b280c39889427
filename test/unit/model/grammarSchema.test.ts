import { getLlama, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { makeValidator, toGrammarSchema } from '../../../src/model/index.js';
import { REPO } from '../../helpers/testEnv.js';

const config = loadConfig({ DOCSIFT_HOME: REPO });
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
});
afterAll(() => llama.dispose());

/** The smallest value a schema allows: what a grammar-constrained model may well produce. */
function minimal(schema: Record<string, unknown>): unknown {
  if (Array.isArray(schema.oneOf)) return minimal(schema.oneOf[schema.oneOf.length - 1] as Record<string, unknown>);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (schema.enum) return (schema.enum as unknown[])[0];
  switch (type) {
    case 'object': return Object.fromEntries(Object.entries(schema.properties as Record<string, Record<string, unknown>>).map(([k, v]) => [k, minimal(v)]));
    case 'array': return [];
    case 'string': return schema.format === 'date' ? '2024-01-31' : 'x';
    case 'null': return null;
    default: return 1;
  }
}

describe('every shipped schema', () => {
  for (const [name, type] of config.prompts.types) {
    it(`${name}: converts to a llama.cpp grammar that parses what it allows`, async () => {
      const grammar = await llama.createGrammarForJsonSchema(toGrammarSchema(type.schema) as never);
      const sample = minimal(type.schema);
      expect(grammar.parse(JSON.stringify(sample))).toEqual(sample);
    });

    it(`${name}: validates with zod from the same file`, () => {
      const validate = makeValidator(type.schema);
      const sample = minimal(type.schema) as Record<string, unknown>;
      expect(validate(sample).ok).toBe(true);
      const first = Object.keys(sample)[0]!;
      const bad = validate({ ...sample, [first]: { nested: true } });
      expect(bad.ok).toBe(false);
      if (!bad.ok) expect(bad.error).toContain(first);
      expect(validate({ ...sample, extra: 1 }).ok).toBe(false);
    });
  }

  it('dates must be ISO dates', () => {
    const validate = makeValidator(config.prompts.types.get('invoice')!.schema);
    const sample = minimal(config.prompts.types.get('invoice')!.schema) as Record<string, unknown>;
    expect(validate({ ...sample, date: '31/12/2017' }).ok).toBe(false);
    expect(validate({ ...sample, date: '2017-12-31' }).ok).toBe(true);
  });

  it('drops docsift annotations but keeps properties that share their names', () => {
    expect(toGrammarSchema({ type: 'object', 'x-normalize': 'amount', title: 't', properties: { title: { type: 'string', 'x-a': 1 } } }))
      .toEqual({ type: 'object', properties: { title: { type: 'string' } } });
  });
});
