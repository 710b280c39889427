import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { getQueue, loadConfig } from '../../src/config/index.js';
import { buildApi } from '../../src/ingest/http/apiServer.js';
import { Enqueuer, waitForDocuments } from '../../src/ingest/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { connectRedis, createDocumentQueue, createRedis, keys as makeKeys, RedisDocumentStore, waitForRedis } from '../../src/queue/index.js';
import { corpusFiles, makeHome, tempDir, testModelPath } from '../helpers/testEnv.js';
import { documentsQueue } from '../helpers/stack.js';
import { freePort } from '../helpers/redisServer.js';
import { spawnWorker } from '../helpers/workers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** A test-owned redis-server with AOF on a fixed port and folder, so it can be stopped and started again. */
function redisServer(port: number, dir: string) {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
  return {
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

describe('Redis restart', () => {
  it('waiting, delayed and active jobs survive; worker and API reconnect; an enqueue during the outage fails clearly', async () => {
    const port = await freePort();
    const dir = tempDir('redis-aof');
    const url = `redis://127.0.0.1:${port}`;
    let server = redisServer(port, dir);
    cleanups.push(() => server.stop());
    await sleep(300);
    const home = makeHome({ documents: documentsQueue({ outputs: {}, worker: { lockDurationMs: 5000, stalledIntervalMs: 2000, maxStalledCount: 1 } }) });
    const delayedDir = tempDir('delayed');
    const env = { ...process.env, REDIS_URL: url, DOCSIFT_HOME: home, DOCSIFT_DOCUMENT_ROOTS: delayedDir, DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info' };
    const config = loadConfig(env);
    const keys = makeKeys(config.env.DOCSIFT_PREFIX);
    const redis = createRedis(url, { forWorker: false });
    await connectRedis(redis, url);
    cleanups.push(() => Promise.resolve(redis.disconnect()));
    const queueConfig = getQueue(config, 'documents');
    const queue = createDocumentQueue(queueConfig, redis, keys);
    cleanups.push(() => queue.close());
    const enqueuer = new Enqueuer(config, queueConfig, queue, redis, keys, new RedisDocumentStore(redis, keys, 3600));
    const app: FastifyInstance = await buildApi({
      config, redis, keys, logger: createLogger({ level: 'silent', destination: 'stderr' }), metrics: new Metrics(),
      queues: new Map([['documents', { config: queueConfig, queue, enqueuer }]]),
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());

    const outcomes = [];
    for (const file of corpusFiles().slice(0, 6)) outcomes.push(await enqueuer.enqueue({ bytes: fs.readFileSync(file), filename: path.basename(file), source: 'test' }));
    const delayedFile = path.join(delayedDir, 'later.txt');
    fs.writeFileSync(delayedFile, 'Invoice 88, delayed job, 5.00 EUR');
    const delayed = await queue.add('document', { ref: { kind: 'file', path: delayedFile }, filename: 'later.txt' } as never, { jobId: 'delayed-job', delay: 4000 });

    const worker = await spawnWorker(env);
    cleanups.push(() => worker.stop('SIGKILL'));
    while (!worker.log().includes('"msg":"document started"')) await sleep(10);

    await server.stop(); // an active job, waiting jobs and a delayed job are in flight
    await sleep(500);
    await expect(enqueuer.enqueue({ bytes: Buffer.from('Invoice during the outage'), filename: 'outage.txt', source: 'test' }))
      .rejects.toMatchObject({ code: 'REDIS_UNAVAILABLE' });
    const during = await fetch(`${base}/v1/queues`);
    expect(during.status).toBe(503);
    expect(((await during.json()) as { error: { code: string } }).error.code).toBe('REDIS_UNAVAILABLE');
    await sleep(1500);

    server = redisServer(port, dir); // same port and AOF folder: the data comes back
    await waitForRedis(redis, url, () => undefined); // this test's own client reconnects too
    const statuses = await waitForDocuments(queue, redis, keys, [...outcomes, { documentId: 'unused', jobId: delayed.id! }], { timeoutMs: 120_000, pollMs: 200, onSettled: () => undefined });
    expect(statuses.map((s) => s.state)).toEqual(Array(7).fill('done'));
    expect((await fetch(`${base}/v1/queues`)).status).toBe(200);
    expect(worker.process.exitCode).toBeNull(); // reconnected, never restarted
    expect(worker.log()).toContain('redis connection error');
  });
});
