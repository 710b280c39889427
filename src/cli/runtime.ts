import { loadConfig, getQueue, type Config, type QueueConfig } from '../config/index.js';
import { createLogger, type Logger } from '../infra/logger.js';
import { connectRedis, createDocumentQueue, createDocumentStore, createRedis, redisTarget, S3Bucket, waitForRedis, keysFor, type DocumentQueue, type DocumentStore, type Keys } from '../queue/index.js';
import type { RedisClient } from '../queue/connection.js';
import { Enqueuer } from '../ingest/index.js';

/** What most commands share: config, a logger, and (on demand) Redis, a queue and the document store. */
export interface Runtime {
  config: Config;
  logger: Logger;
  keys: Keys;
  /** The bucket of DOCSIFT_STORE=s3 or s3 outputs (DOCSIFT_S3_BUCKET), when set. */
  s3: S3Bucket | undefined;
}

export function createRuntime(destination: 'stdout' | 'stderr'): Runtime {
  const config = loadConfig();
  const logger = createLogger({ level: config.env.DOCSIFT_LOG_LEVEL, destination });
  return { config, logger, keys: keysFor(config), s3: S3Bucket.fromEnv(config.env) };
}

export async function openQueue(rt: Runtime, queueName: string, forWorker = false): Promise<{ redis: RedisClient; queueConfig: QueueConfig; queue: DocumentQueue; store: DocumentStore }> {
  const queueConfig = getQueue(rt.config, queueName);
  const redis = await openRedis(rt, forWorker);
  const queue = createDocumentQueue(queueConfig, redis, rt.keys);
  return { redis, queueConfig, queue, store: createDocumentStore(rt.config.env, redis, rt.keys, rt.s3) };
}

/** Every configured queue with its producer, for the API and other multi-queue commands. */
export async function openAllQueues(rt: Runtime): Promise<{ redis: RedisClient; queues: Map<string, { config: QueueConfig; queue: DocumentQueue; enqueuer: Enqueuer }> }> {
  // Not the worker's settings: an HTTP request or a scan during a Redis outage fails fast and says
  // so (503 REDIS_UNAVAILABLE) instead of hanging; ioredis reconnects in the background.
  const target = redisTarget(rt.config.env);
  const redis = createRedis(target, { forWorker: false, onError: (err) => rt.logger.warn({ err: err.message }, 'redis connection error') });
  await waitForRedis(redis, target, (attempt, delayMs, reason) => rt.logger.warn({ attempt, retryInMs: delayMs, reason }, 'waiting for Redis'));
  const store = createDocumentStore(rt.config.env, redis, rt.keys, rt.s3);
  const queues = new Map<string, { config: QueueConfig; queue: DocumentQueue; enqueuer: Enqueuer }>();
  for (const queueConfig of rt.config.queues.values()) {
    const queue = createDocumentQueue(queueConfig, redis, rt.keys);
    queues.set(queueConfig.name, { config: queueConfig, queue, enqueuer: new Enqueuer(rt.config, queueConfig, queue, redis, rt.keys, store) });
  }
  return { redis, queues };
}

export async function openRedis(rt: Runtime, forWorker = false): Promise<RedisClient> {
  const target = redisTarget(rt.config.env);
  const redis = createRedis(target, { forWorker });
  await connectRedis(redis, target);
  return redis;
}

/** Runs a command's body with the runtime and a Redis connection, closed after (stderr logs: stdout is the command's). */
export async function withRedis<T>(fn: (rt: Runtime, redis: RedisClient) => Promise<T>): Promise<T> {
  const rt = createRuntime('stderr');
  const redis = await openRedis(rt);
  try {
    return await fn(rt, redis);
  } finally {
    await redis.quit();
  }
}

/** Resolves with the signal's name when the process is asked to stop (SIGTERM from systemd, Ctrl-C). */
export function untilStopSignal(): Promise<'SIGTERM' | 'SIGINT'> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}
