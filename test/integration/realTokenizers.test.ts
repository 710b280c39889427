import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeValidator } from '../../src/model/index.js';
import { corpusFiles, tempDir, tokenizerModelPath, type TokenizerName } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const invoice = () => corpusFiles().find((f) => f.endsWith('AmazonWebServices.pdf'))!;

/**
 * The whole pipeline on models that carry a real tokenizer and chat template (random weights):
 * the same worker, queue and records as with the byte-vocabulary test model.
 */
describe.each<TokenizerName>(['qwen', 'llama3'])('pipeline end to end on a real %s tokenizer', (name) => {
  const model = { modelPath: tokenizerModelPath(name) };

  it('classifies and extracts a corpus invoice into a schema-valid record', async () => {
    stack = await startStack({ documents: documentsQueue() }, 'documents', {}, model);
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status!.state, JSON.stringify(status)).toBe('done');
    if (status!.state !== 'done') return;
    const record = status!.record;
    expect(record.model.file).toBe(path.basename(model.modelPath));
    expect(record.classification.method).toBe('model');
    expect(record.classification.confidence).toBeGreaterThan(0);
    if (record.documentType !== 'other') {
      const schema = stack.config.prompts.types.get(record.documentType!)!.schema;
      expect(makeValidator(schema)(record.fields)).toMatchObject({ ok: true });
      for (const c of Object.values(record.confidence ?? {})) expect(c > 0 && c <= 1).toBe(true);
    }
    expect(record.tokens.forced).toBeGreaterThan(0);
  });

  it('reads a document longer than the context in chunks', async () => {
    stack = await startStack({ long: documentsQueue({ pipeline: { mode: 'extract', documentType: 'invoice' }, model: { contextSize: 2048, maxTokens: 512 } }) }, 'long', {}, model);
    const dir = tempDir('long');
    const pages = Array.from({ length: 6 }, (_, p) => Array.from({ length: 8 }, (_, i) => `Rechnung RE-7 Seite ${p + 1} Zeile ${i + 1}: Schraube M${i + 3}, 2,00 EUR — ${'Lieferung frei Haus. '.repeat(3)}`).join('\n\n'));
    fs.writeFileSync(path.join(dir, 'long.txt'), pages.join('\f'));
    const [status] = await stack.waitAll([await stack.enqueueFile(path.join(dir, 'long.txt'))]);
    expect(status!.state, JSON.stringify(status)).toBe('done');
    if (status!.state === 'done') expect(status!.record.chunks).toBeGreaterThan(1);
  });

  it('re-asks output that does not validate, then fails MODEL_OUTPUT_INVALID', async () => {
    stack = await startStack({ short: documentsQueue({ pipeline: { mode: 'extract', documentType: 'invoice' }, model: { maxTokens: 16, reasks: 1 } }) }, 'short', {}, model);
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status, JSON.stringify(status)).toMatchObject({ state: 'failed', code: 'MODEL_OUTPUT_INVALID', attempts: 1 });
    if (status!.state === 'failed') expect(status!.message).toMatch(/after 1 re-ask\(s\): the JSON was cut off at maxTokens \(16\)/);
  });
});
