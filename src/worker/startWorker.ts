import type { RedisClient } from '../queue/connection.js';
import { getQueue, pipelineInfo, type Config, type QueueConfig } from '../config/index.js';
import type { Logger } from '../infra/logger.js';
import { Metrics, startMetricsServer } from '../infra/metrics.js';
import { ModelEngine } from '../model/index.js';
import { createOutputs, deliveryPolicyOf, openOutputDeps, type OutputDeps } from '../outputs/index.js';
import { createDocumentQueue, createRedis, describeRedis, publishPipeline, redisTarget, S3Bucket, waitForRedis, type Keys } from '../queue/index.js';
import { TextExtractor } from '../text/index.js';
import { startDeliveryWorker } from './deliveryWorker.js';
import { DocumentWorker } from './documentWorker.js';

export interface RunningWorker {
  queue: QueueConfig;
  engine: ModelEngine;
  worker: DocumentWorker;
  redis: RedisClient;
  metrics: Metrics;
  metricsPort: number | undefined;
  /** The address the metrics server is bound to. */
  metricsHost: string | undefined;
  /** The process's one delivery queue and PostgreSQL pool, for others in the process to share. */
  outputs: OutputDeps;
  /** The shutdown order: stop intake and drain (graceMs), dispose the model, stop parsers, close Redis. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Wires one worker process: RedisClient, the model (loaded once, a sequence per concurrent job), the
 * PDF parser pool, the queue's outputs and the webhook deliveries, then starts taking jobs. The CLI and the tests both
 * start workers through here.
 */
export async function startWorker(options: {
  config: Config; queueName: string; keys: Keys; logger: Logger; modelPath: string; concurrency?: number;
  /** Serve /metrics, /healthz and /readyz on this port (0: any free port); undefined: no server. */
  metricsPort?: number;
  /** Where that server binds; loopback unless a scraper outside the machine needs it. */
  metricsHost?: string;
}): Promise<RunningWorker> {
  const { config, keys, logger } = options;
  const queue = getQueue(config, options.queueName);
  const concurrency = options.concurrency ?? queue.concurrency;
  const target = redisTarget(config.env);
  const redis = createRedis(target, { forWorker: true, onError: (err) => logger.warn({ err: err.message }, 'redis connection error') });
  await waitForRedis(redis, target, (attempt, delayMs, reason) =>
    logger.warn({ redis: describeRedis(target), attempt, retryInMs: delayMs, reason }, `waiting for Redis at ${describeRedis(target)}`));
  let engine: ModelEngine;
  try {
    engine = await ModelEngine.load({
      modelPath: options.modelPath,
      sequences: concurrency,
      contextSize: queue.model.contextSize,
      threads: config.env.DOCSIFT_THREADS,
      gpu: config.env.DOCSIFT_GPU,
      logger,
      lora: queue.model.lora,
    });
  } catch (err) {
    await redis.quit();
    throw err;
  }
  // "auto" is settled by the engine from memory; the worker runs as many jobs as it has sequences.
  const jobs = engine.info.sequences;
  logger.info({ model: engine.info, queue: queue.name, concurrency: jobs }, 'model loaded');
  const metrics = new Metrics();
  metrics.modelLoadSeconds.set(engine.info.loadMs / 1000);
  metrics.backend.set({ backend: engine.info.backend, binary: engine.info.binary, reason: engine.info.backendReason }, 1);
  metrics.sequences.set({ state: 'total' }, engine.info.sequences);
  metrics.onScrape.push(() => metrics.sequences.set({ state: 'busy' }, engine.busySequences));
  const extractor = new TextExtractor();
  const s3 = S3Bucket.fromEnv(config.env);
  const outputs = openOutputDeps(config.env, redis, keys, s3);
  const worker = new DocumentWorker({
    config, queue, redis, keys, engine, extractor, logger, concurrency: jobs, metrics, s3,
    outputs: createOutputs(queue, { redis, keys, ...outputs }),
  });
  const deliveryWorker = startDeliveryWorker({ redis, keys, logger, metrics, policy: deliveryPolicyOf(config), secrets: { webhook: config.env.DOCSIFT_WEBHOOK_SECRET, callback: config.env.DOCSIFT_CALLBACK_SECRET }, deadLetterMax: config.env.DOCSIFT_DEADLETTER_MAX });
  const bullQueue = createDocumentQueue(queue, redis, keys);
  metrics.watchQueues([bullQueue]);
  let modelLoaded = true;
  const metricsServer = options.metricsPort === undefined ? undefined : await startMetricsServer(metrics, {
    redis: async () => (await redis.ping()) === 'PONG',
    model: async () => modelLoaded,
  }, options.metricsPort, options.metricsHost);
  if (metricsServer) logger.info({ port: metricsServer.port }, 'metrics on /metrics, health on /healthz and /readyz');
  await publishPipeline(redis, keys, pipelineInfo(config, queue));
  worker.run();
  return {
    queue, engine, worker, redis, metrics, metricsPort: metricsServer?.port, metricsHost: metricsServer?.host,
    outputs,
    async stop(graceMs: number) {
      await worker.close(graceMs);
      modelLoaded = false;
      await metricsServer?.close();
      await bullQueue.close();
      await deliveryWorker.close();
      await outputs.close();
      s3?.close();
      await engine.dispose();
      await extractor.close();
      await redis.quit();
    },
  };
}
