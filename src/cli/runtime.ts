import { InvalidArgumentError } from 'commander';
import { loadConfig, getQueue, type Config, type QueueConfig } from '../config/index.js';
import { ConfigError, DocsiftError } from '../infra/errors.js';
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
  const target = redisTarget(rt.config.env);
  const redis = createRedis(target, { forWorker });
  await connectRedis(redis, target);
  const queue = createDocumentQueue(queueConfig, redis, rt.keys);
  return { redis, queueConfig, queue, store: createDocumentStore(rt.config.env, redis, rt.keys, rt.s3) };
}

/**
 * Runs a command's body and turns what it throws into one line on stderr and an exit code:
 * 2 for configuration and usage problems, 1 for everything else.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? 0;
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`docsift: configuration error: ${err.message}\n`);
        process.exitCode = 2;
      } else if (err instanceof DocsiftError) {
        process.stderr.write(`docsift: ${err.code}: ${err.message}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`docsift: ${(err as Error).message ?? String(err)}\n`);
        process.exitCode = 1;
      }
    }
  };
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
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


export async function openRedis(rt: Runtime): Promise<RedisClient> {
  const target = redisTarget(rt.config.env);
  const redis = createRedis(target, { forWorker: false });
  await connectRedis(redis, target);
  return redis;
}

export function parsePrice(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a price per million tokens such as 0.15, got "${value}"`);
  return n;
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port number (0 for any free port), got "${value}"`);
  return n;
}

/** Resolves with the signal's name when the process is asked to stop (SIGTERM from systemd, Ctrl-C). */
export function untilStopSignal(): Promise<'SIGTERM' | 'SIGINT'> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}
