import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusFiles } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let base: string;
beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents', {}, { metricsPort: 0 });
  base = `http://127.0.0.1:${stack.worker.metricsPort}`;
});
afterAll(() => stack?.close());

function value(text: string, metric: string, labels: Record<string, string>): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('worker metrics and health', () => {
  it('binds to loopback unless told otherwise (--metrics-host)', () => {
    expect(stack.worker.metricsHost).toBe('127.0.0.1');
  });

  it('serves /healthz and /readyz (Redis reachable, model loaded)', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { redis: true, model: true } });
  });

  it('counts documents by result and code, stage durations, tokens, sequences and jobs by state', async () => {
    const good = await stack.enqueueFile(corpusFiles()[0]!);
    const bad = await stack.enqueuer.enqueue({ bytes: Buffer.alloc(0), filename: 'empty.pdf', source: 'test' });
    await stack.waitAll([good, bad]);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(value(text, 'docsift_documents_total', { queue: 'documents', result: 'completed' })).toBe(1);
    expect(value(text, 'docsift_documents_total', { result: 'failed', code: 'EMPTY_TEXT' })).toBe(1);
    for (const stage of ['text', 'classify', 'extract', 'validate', 'outputs']) {
      expect(value(text, 'docsift_stage_duration_seconds_count', { queue: 'documents', stage }), stage).toBe(1);
    }
    expect(value(text, 'docsift_tokens_total', { kind: 'prompt' })).toBeGreaterThan(100);
    expect(value(text, 'docsift_tokens_total', { kind: 'generated' })).toBeGreaterThan(0);
    expect(value(text, 'docsift_model_sequences', { state: 'total' })).toBe(stack.queueConfig.concurrency);
    expect(value(text, 'docsift_model_sequences', { state: 'busy' })).toBe(0);
    expect(value(text, 'docsift_jobs', { queue: 'documents', state: 'completed' })).toBe(1);
    expect(value(text, 'docsift_jobs', { queue: 'documents', state: 'failed' })).toBe(1);
    expect(text).toMatch(/^docsift_model_load_seconds \d/m);
    expect(value(text, 'docsift_llama_backend_info', { backend: 'cpu', binary: 'cpu', reason: 'cpu' })).toBe(1);
    expect(text).toContain('docsift_nodejs_eventloop_lag_seconds');
  });
});
