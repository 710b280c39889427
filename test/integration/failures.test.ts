import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { corpusFiles, tempDir } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { makeTestLora } from '../helpers/lora.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const invoice = () => corpusFiles().find((f) => f.endsWith('AzureInterior.pdf'))!;

describe('model-stage limits and failures', () => {
  it('a document longer than the context fails DOCUMENT_TOO_LONG, never cut silently', async () => {
    stack = await startStack({ tiny: documentsQueue({ model: { contextSize: 512 } }) }, 'tiny');
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status).toMatchObject({ state: 'failed', code: 'DOCUMENT_TOO_LONG', attempts: 1 });
  });

  it('a document longer than the context is read in chunks and merged, with the pages of each field', async () => {
    stack = await startStack({ long: documentsQueue({ pipeline: { mode: 'extract', documentType: 'invoice' }, model: { contextSize: 4096, maxTokens: 1024 } }) }, 'long');
    const dir = tempDir('long');
    const pages = Array.from({ length: 10 }, (_, p) => Array.from({ length: 8 }, (_, i) => `Invoice INV-1 page ${p + 1} line ${i + 1}: widget ${p * 8 + i}, 2.00 EUR`).join('\n\n'));
    fs.writeFileSync(path.join(dir, 'long.txt'), pages.join('\f'));
    const [status] = await stack.waitAll([await stack.enqueueFile(path.join(dir, 'long.txt'))]);
    expect(status!.state, JSON.stringify(status)).toBe('done');
    if (status!.state !== 'done') return;
    const record = status!.record;
    expect(record.chunks).toBeGreaterThan(1);
    expect(record.warnings.some((w) => w.startsWith('CHUNKED'))).toBe(true);
    expect(Object.keys(record.fieldPages!).sort()).toEqual(Object.keys(record.fields!).sort());
    expect(record.text.pages).toBe(10);
  });

  it('with chunking off, a document longer than the context fails DOCUMENT_TOO_LONG', async () => {
    stack = await startStack({ whole: documentsQueue({ model: { contextSize: 2048, maxTokens: 512, chunking: { enabled: false } } }) }, 'whole');
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status).toMatchObject({ state: 'failed', code: 'DOCUMENT_TOO_LONG' });
  });

  it('output that never validates is re-asked with the error, then fails MODEL_OUTPUT_INVALID', async () => {
    // 16 tokens cannot hold an invoice object: the JSON is cut off every time.
    stack = await startStack({ short: documentsQueue({ pipeline: { mode: 'extract', documentType: 'invoice' }, model: { maxTokens: 16, reasks: 1 } }) }, 'short');
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status, JSON.stringify(status)).toMatchObject({ state: 'failed', code: 'MODEL_OUTPUT_INVALID', attempts: 1 });
    if (status!.state === 'failed') expect(status!.message).toMatch(/after 1 re-ask\(s\): the JSON was cut off at maxTokens \(16\)/);
  });

  it('a queue can load a LoRA adapter on top of its model, and records it', async () => {
    const adapter = path.join(tempDir('lora'), 'invoices-lora.gguf');
    makeTestLora(adapter);
    stack = await startStack({ adapted: documentsQueue({ model: { lora: [{ path: adapter, scale: 1 }] } }) }, 'adapted');
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status!.state, JSON.stringify(status)).toBe('done');
    if (status!.state === 'done') expect(status!.record.model.lora).toEqual(['invoices-lora.gguf']);
  });

  it('concurrency "auto" sizes the sequences from memory (at most 4 on CPU) and runs that many jobs', async () => {
    stack = await startStack({ auto: documentsQueue({ concurrency: 'auto' }) }, 'auto');
    const expected = stack.worker.engine.info.backend === 'cpu' ? 4 : stack.worker.engine.info.sequences;
    expect(stack.worker.engine.info.sequences).toBe(expected);
    expect(stack.worker.worker.worker.concurrency).toBe(stack.worker.engine.info.sequences);
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status!.state).toBe('done');
  });

  it('a fixed-type queue extracts without classifying', async () => {
    stack = await startStack({ invoices: documentsQueue({ pipeline: { mode: 'extract', documentType: 'invoice' } }) }, 'invoices');
    const [status] = await stack.waitAll([await stack.enqueueFile(invoice())]);
    expect(status!.state).toBe('done');
    if (status!.state === 'done') {
      expect(status!.record.classification).toEqual({ label: 'invoice', method: 'fixed', confidence: null });
      expect(status!.record.timings.classifyMs).toBe(0);
      expect(Object.keys(status!.record.prompts)).toEqual(['invoice']);
    }
  });

  it('a transient error (an output that cannot be written) is retried with backoff, then fails with its code', async () => {
    const blocker = path.join(tempDir('blocked'), 'not-a-folder');
    fs.writeFileSync(blocker, 'a file where the outbox folder should be');
    stack = await startStack({
      flaky: documentsQueue({ attempts: 2, backoff: { type: 'fixed', delayMs: 100 }, outputs: { outbox: { dir: blocker } } }),
    }, 'flaky');
    const outcome = await stack.enqueueFile(invoice());
    const [status] = await stack.waitAll([outcome]);
    expect(status).toMatchObject({ state: 'failed', code: 'OUTPUT_FAILED', attempts: 2 });
    // The Redis output ran before the outbox failed; the record there is the one a retry would overwrite.
    const failure = JSON.parse((await stack.redis.get(stack.keys.failure(outcome.documentId)))!);
    expect(failure).toMatchObject({ code: 'OUTPUT_FAILED', attempts: 2, willRetry: false });
    // ...and visible in metrics: two failed writes to the outbox.
    expect(await stack.worker.metrics.registry.getSingleMetricAsString('docsift_output_failures_total')).toContain('docsift_output_failures_total{queue="flaky",output="outbox"} 2');
  });
});
