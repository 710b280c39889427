import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getQueue, loadConfig, type Config } from '../../src/config/index.js';
import { Enqueuer } from '../../src/ingest/index.js';
import { buildApi } from '../../src/ingest/http/apiServer.js';
import { ERROR_CODES } from '../../src/infra/errors.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { connectRedis, createDocumentQueue, createRedis, keys as makeKeys, RedisDocumentStore, type DocumentQueue, type Keys } from '../../src/queue/index.js';
import { freePort } from '../helpers/redisServer.js';
import { documentsQueue } from '../helpers/stack.js';
import { deleteKeys, makeHome, REDIS_URL, tempDir, uniquePrefix } from '../helpers/testEnv.js';

/**
 * The HTTP contract without a worker, through inject(): auth, validation, and every documented
 * error status, each answered with the status its code declares in src/infra/errors.ts. (The
 * end-to-end test over a real socket, with a worker, is api.test.ts.)
 */
const TOKEN = 'contract-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
const logger = createLogger({ level: 'silent', destination: 'stderr' });
const roots = tempDir('contract-root');
let config: Config;
let keys: Keys;
let redis: Redis;
let queue: DocumentQueue;
let app: FastifyInstance;

async function build(client: Redis): Promise<FastifyInstance> {
  const queueConfig = getQueue(config, 'documents');
  const q = createDocumentQueue(queueConfig, client, keys);
  q.on('error', () => undefined); // the 503 case points it at a Redis that is down on purpose
  return buildApi({
    config, redis: client, keys, logger, metrics: new Metrics(),
    queues: new Map([['documents', { config: queueConfig, queue: q, enqueuer: new Enqueuer(config, queueConfig, q, client, keys, new RedisDocumentStore(client, keys, 600)) }]]),
  });
}

beforeAll(async () => {
  const prefix = uniquePrefix('contract');
  config = loadConfig({
    DOCSIFT_HOME: makeHome({ documents: documentsQueue({ limits: { maxBytes: 1000 }, review: { enabled: true } }) }), DOCSIFT_PREFIX: prefix, REDIS_URL,
    DOCSIFT_API_TOKENS: TOKEN, DOCSIFT_API_ROOTS: roots, DOCSIFT_CALLBACK_HOSTS: 'erp.example.com', DOCSIFT_CALLBACK_SECRET: 'contract-callback-secret-0123',
  });
  keys = makeKeys(prefix);
  redis = createRedis(REDIS_URL, { forWorker: false });
  await connectRedis(redis, REDIS_URL);
  app = await build(redis);
  queue = createDocumentQueue(getQueue(config, 'documents'), redis, keys);
});

afterAll(async () => {
  await app?.close();
  await queue?.obliterate({ force: true });
  await queue?.close();
  await deleteKeys(redis, config.env.DOCSIFT_PREFIX);
  redis?.disconnect();
});

/** A multipart body for inject(). */
function form(files: Array<[string, string]>, fields: Record<string, string> = {}): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'contract-boundary';
  const parts = [
    ...Object.entries(fields).map(([k, v]) => `--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`),
    ...files.map(([name, body]) => `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: application/octet-stream\r\n\r\n${body}\r\n`),
  ];
  return { payload: Buffer.from(`${parts.join('')}--${boundary}--\r\n`), headers: { ...auth, 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** The answer is the code's declared status with the documented body. */
function expectError(res: { statusCode: number; json(): any }, code: keyof typeof ERROR_CODES | string, status?: number) {
  const body = res.json();
  expect(body.error.code, JSON.stringify(body)).toBe(code);
  expect(res.statusCode, JSON.stringify(body)).toBe(status ?? ERROR_CODES[code as keyof typeof ERROR_CODES].http);
  expect(typeof body.error.message).toBe('string');
  return body.error.message as string;
}

describe('HTTP contract (inject, no worker)', () => {
  it('401 without a valid token, on every route but the health checks', async () => {
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    for (const [method, url] of [['GET', '/v1/queues'], ['POST', '/v1/documents'], ['GET', '/v1/documents/x'], ['GET', '/v1/reviews'], ['GET', '/openapi.json'], ['GET', '/metrics']] as const) {
      const res = await app.inject({ method, url, headers: { authorization: 'Bearer not-the-token-0123456789' } });
      expectError(res, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('400 names the malformed field; nothing is enqueued', async () => {
    const json = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/documents', headers: auth, payload: payload as Record<string, unknown> });
    expect(expectError(await json({ path: 'a.pdf', priority: 'high' }), 'BAD_REQUEST')).toContain('priority');
    expect(expectError(await json({ path: 'a.pdf', surprise: 1 }), 'BAD_REQUEST')).toMatch(/surprise|Unrecognized/);
    expect(expectError(await app.inject({ method: 'POST', url: '/v1/documents', ...form([['a.txt', 'Invoice 1']], { metadata: '[1,2]' }) }), 'BAD_REQUEST')).toContain('metadata');
    expect(expectError(await app.inject({ method: 'POST', url: '/v1/documents', ...form([['bad\u0007.txt', 'Invoice 2']]) }), 'BAD_REQUEST')).toContain('filename');
    expect(expectError(await app.inject({ method: 'POST', url: '/v1/reviews/x/accept', headers: auth, payload: {} }), 'BAD_REQUEST')).toContain('by');
    expect(await queue.count()).toBe(0);
  });

  it('403 for paths outside the roots and callbacks to hosts not allowed', async () => {
    expectError(await app.inject({ method: 'POST', url: '/v1/documents', headers: auth, payload: { path: '/etc/passwd' } }), 'PATH_NOT_ALLOWED');
    expectError(await app.inject({ method: 'POST', url: '/v1/documents', ...form([['a.txt', 'Invoice 3']], { callbackUrl: 'http://169.254.169.254/latest' }) }), 'CALLBACK_NOT_ALLOWED');
    expect(await queue.count()).toBe(0);
  });

  it('404 for unknown queues, documents and files', async () => {
    expect(expectError(await app.inject({ method: 'POST', url: '/v1/documents', ...form([['a.txt', 'Invoice 4']], { queue: 'payroll' }) }), 'QUEUE_NOT_FOUND')).toContain('"payroll"');
    expectError(await app.inject({ url: '/v1/documents/no-such-doc', headers: auth }), 'NOT_FOUND');
    expectError(await app.inject({ url: '/v1/documents/no-such-doc/result', headers: auth }), 'NOT_FOUND');
    expectError(await app.inject({ method: 'DELETE', url: '/v1/documents/no-such-doc', headers: auth }), 'NOT_FOUND');
    expectError(await app.inject({ url: '/v1/reviews/no-such-doc', headers: auth }), 'NOT_FOUND');
    expectError(await app.inject({ method: 'POST', url: '/v1/documents', headers: auth, payload: { path: 'missing.pdf' } }), 'DOCUMENT_MISSING');
  });

  it('409 for a result not ready, a failed document (with its own code), and a review already decided', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/documents', ...form([['w.txt', `Invoice waiting ${Date.now()}`]]) });
    expect(res.statusCode).toBe(202);
    const id = res.json().documents[0].documentId as string;
    expectError(await app.inject({ url: `/v1/documents/${id}/result`, headers: auth }), 'NOT_READY');
    await redis.set(keys.failure('failed-doc'), JSON.stringify({ documentId: 'failed-doc', code: 'ENCRYPTED', message: 'locked', attempts: 1, willRetry: false }));
    expectError(await app.inject({ url: '/v1/documents/failed-doc/result', headers: auth }), 'ENCRYPTED', 409);
    await redis.set(keys.result('final-doc'), JSON.stringify({ documentId: 'final-doc', queue: 'documents', review: null }));
    expectError(await app.inject({ method: 'POST', url: '/v1/reviews/final-doc/accept', headers: auth, payload: { by: 'alice' } }), 'NOT_PENDING_REVIEW');
  });

  it('400 for a correction the schema refuses', async () => {
    await redis.set(keys.result('held-doc'), JSON.stringify({ documentId: 'held-doc', queue: 'documents', documentType: 'invoice', fields: { amount: 1 }, review: { status: 'pending', reasons: ['sampled'] } }));
    await redis.zadd(keys.reviewPending, 1, 'held-doc');
    expect(expectError(await app.inject({ method: 'POST', url: '/v1/reviews/held-doc/correct', headers: auth, payload: { by: 'bob', fields: { colour: 'red' } } }), 'INVALID_CORRECTION')).toContain('colour');
  });

  it('413 over the byte limit', async () => {
    expectError(await app.inject({ method: 'POST', url: '/v1/documents', ...form([['big.txt', 'x'.repeat(2000)]]) }), 'TOO_LARGE');
  });

  it('503 when Redis does not answer', async () => {
    const down = createRedis(`redis://127.0.0.1:${await freePort()}`, { forWorker: false });
    const offline = await build(down);
    try {
      expectError(await offline.inject({ url: '/v1/documents/any-doc', headers: auth }), 'REDIS_UNAVAILABLE');
      expect((await offline.inject({ url: '/readyz' })).statusCode).toBe(503);
    } finally {
      await offline.close();
      down.disconnect();
    }
  });
});
