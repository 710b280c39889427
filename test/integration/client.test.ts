import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/ingest/http/apiServer.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { HttpClient, RedisClient, WaitTimeoutError, type DocsiftClient } from '../../src/ingest/client/index.js';
import { CORPUS, REDIS_URL } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

const TOKEN = 'client-test-token-0123456789';
let stack: Stack;
let app: FastifyInstance;
const clients: Record<string, DocsiftClient> = {};

beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_API_TOKENS: TOKEN, DOCSIFT_API_ROOTS: CORPUS });
  app = await buildApi({
    config: stack.config, redis: stack.redis, keys: stack.keys, logger: createLogger({ level: 'silent', destination: 'stderr' }), metrics: new Metrics(),
    queues: new Map([['documents', { config: stack.queueConfig, queue: stack.queue, enqueuer: stack.enqueuer }]]),
  });
  clients.http = new HttpClient({ baseUrl: await app.listen({ host: '127.0.0.1', port: 0 }), token: TOKEN });
  clients.redis = await RedisClient.connect({ url: REDIS_URL, prefix: stack.config.env.DOCSIFT_PREFIX });
});
afterAll(async () => {
  for (const c of Object.values(clients)) await c.close();
  await app?.close();
  await stack?.close();
});

describe.each(['http', 'redis'])('%s client', (kind) => {
  it('enqueues a buffer, a stream and a path, and waits for typed results', async () => {
    const client = clients[kind]!;
    const fromBuffer = await client.enqueue(Buffer.from(`Invoice ${kind}-1 total 4.00 EUR`), { filename: 'a.txt', metadata: { ref: kind } });
    const fromStream = await client.enqueue(Readable.from([Buffer.from('RECEIPT '), Buffer.from(`${kind} bakery 2.10 EUR`)]), { filename: 'b.txt' });
    const fromPath = await client.enqueue({ path: path.join(CORPUS, kind === 'http' ? 'coolblue1.pdf' : 'coolblue2.pdf') });
    for (const e of [fromBuffer, fromStream, fromPath]) expect(e).toMatchObject({ queue: 'documents', status: 'queued' });
    const record = await client.waitForResult(fromBuffer.documentId, { timeoutMs: 60_000, pollMs: 100 });
    expect(record.documentId).toBe(fromBuffer.documentId);
    expect(record.metadata).toEqual({ ref: kind });
    expect((await client.waitForResult(fromStream.documentId, { pollMs: 100 })).filename).toBe('b.txt');
    const pdf = await client.waitForResult(fromPath.documentId, { pollMs: 100 });
    expect(pdf.text.format).toBe('pdf');
    expect(await client.status(fromPath.documentId)).toMatchObject({ state: 'done', error: null });
    expect(await client.result(fromPath.documentId)).toEqual(pdf);
  });

  it('reports failures with their code, unknown documents as null, and times out waiting', async () => {
    const client = clients[kind]!;
    const bad = await client.enqueue(Buffer.from([0, 1, 2, kind.length]), { filename: 'x.bin' });
    await expect(client.waitForResult(bad.documentId, { pollMs: 100 })).rejects.toMatchObject({ name: 'DocumentFailedError', code: 'UNSUPPORTED_FORMAT' });
    expect(await client.status('0000-nothing')).toBeNull();
    expect(await client.result('0000-nothing')).toBeNull();
    // Waiting on a document docsift does not know ends at once, not at the timeout.
    const started = Date.now();
    await expect(client.waitForResult('0000-nothing', { timeoutMs: 60_000, pollMs: 100 })).rejects.toMatchObject({ name: 'DocumentFailedError', code: 'NOT_FOUND' });
    expect(Date.now() - started).toBeLessThan(5_000);
    await stack.queue.pause();
    try {
      const waiting = await client.enqueue(Buffer.from(`PO ${kind} waits`), { filename: 'w.txt' });
      await expect(client.waitForResult(waiting.documentId, { timeoutMs: 300, pollMs: 50 })).rejects.toBeInstanceOf(WaitTimeoutError);
    } finally {
      await stack.queue.resume();
    }
  });
});

it('the HTTP client enqueues a file on the server by its path under the API roots', async () => {
  const client = clients.http as HttpClient;
  const done = await client.enqueue({ serverPath: 'AzureInterior.pdf' }, { metadata: { via: 'server' } });
  expect(done).toMatchObject({ queue: 'documents', status: expect.stringMatching(/queued|duplicate|done/) });
  const record = await client.waitForResult(done.documentId, { timeoutMs: 60_000, pollMs: 100 });
  expect(record.filename).toBe('AzureInterior.pdf');
  await expect(client.enqueue({ serverPath: '../etc/passwd' })).rejects.toMatchObject({ status: 403, code: 'PATH_NOT_ALLOWED' });
  await expect(clients.redis!.enqueue({ serverPath: 'AzureInterior.pdf' })).rejects.toThrow(/HttpClient/);
});

it('is importable as docsift/client', async () => {
  const mod = await import('docsift/client');
  expect(mod.HttpClient).toBeTypeOf('function');
  expect(mod.RedisClient).toBeTypeOf('function');
});
