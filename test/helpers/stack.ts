import fs from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { getQueue, loadConfig, type Config, type QueueConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { Enqueuer, waitForDocuments, type DocumentStatus, type EnqueueOutcome } from '../../src/ingest/index.js';
import { connectRedis, createDocumentQueue, createRedis, keys as makeKeys, RedisDocumentStore, type DocumentQueue, type Keys } from '../../src/queue/index.js';
import { startWorker, type RunningWorker } from '../../src/worker/index.js';
import { deleteKeys, makeHome, REDIS_URL, REPO, tempDir, testModelPath, uniquePrefix } from './testEnv.js';

export interface Stack {
  config: Config;
  queueConfig: QueueConfig;
  keys: Keys;
  redis: Redis;
  queue: DocumentQueue;
  enqueuer: Enqueuer;
  worker: RunningWorker;
  outbox: string;
  enqueueFile(file: string, force?: boolean): Promise<EnqueueOutcome>;
  /** Starts a fresh worker process-equivalent (after the test stopped the first one). */
  startAnotherWorker(): Promise<RunningWorker>;
  waitAll(outcomes: EnqueueOutcome[], timeoutMs?: number): Promise<DocumentStatus[]>;
  close(): Promise<void>;
}

/** The shipped documents queue with its outbox moved to a temporary folder, plus overrides. */
export function documentsQueue(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const shipped = JSON.parse(fs.readFileSync(path.join(REPO, 'queues', 'documents.json'), 'utf8')) as Record<string, unknown>;
  return { ...shipped, outputs: { outbox: { dir: tempDir('outbox') } }, ...overrides };
}

/**
 * A real worker (generated model, real Redis under a unique prefix) and a producer for one
 * queue, in this process. close() stops the worker and deletes every key the test wrote.
 */
export async function startStack(queues: Record<string, Record<string, unknown>>, queueName: string, env: Record<string, string> = {}, options: { metricsPort?: number; modelPath?: string } = {}): Promise<Stack> {
  const prefix = uniquePrefix(queueName);
  const config = loadConfig({ DOCSIFT_HOME: makeHome(queues), DOCSIFT_PREFIX: prefix, REDIS_URL, DOCSIFT_THREADS: '1', ...env });
  const keys = makeKeys(prefix);
  const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', destination: 'stderr' });
  const start = () => startWorker({ config, queueName, keys, logger, modelPath: testModelPath(), ...options });
  let worker = await start();
  let stopped = false;
  const queueConfig = getQueue(config, queueName);
  const redis = createRedis(REDIS_URL, { forWorker: false });
  await connectRedis(redis, REDIS_URL);
  const queue = createDocumentQueue(queueConfig, redis, keys);
  const enqueuer = new Enqueuer(config, queueConfig, queue, redis, keys, new RedisDocumentStore(redis, keys, 3600));
  return {
    config, queueConfig, keys, redis, queue, enqueuer,
    get worker() { return worker; },
    async startAnotherWorker() {
      worker = await start();
      return worker;
    },
    outbox: queueConfig.outputs.outbox?.dir ?? '',
    enqueueFile: (file, force = false) => enqueuer.enqueue({ bytes: fs.readFileSync(file), filename: path.basename(file), source: 'test', force }),
    waitAll: (outcomes, timeoutMs = 120_000) => waitForDocuments(queue, redis, keys, outcomes, { timeoutMs, pollMs: 100, onSettled: () => undefined }),
    async close() {
      if (!stopped) await worker.stop(5_000).catch(() => undefined);
      stopped = true;
      await queue.obliterate({ force: true });
      await queue.close();
      await deleteKeys(redis, prefix);
      await redis.quit();
    },
  };
}
