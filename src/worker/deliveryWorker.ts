import { randomBytes } from 'node:crypto';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import type { Logger } from '../infra/logger.js';
import type { Metrics } from '../infra/metrics.js';
import { Delivery, DELIVERY_QUEUE, DeliveryError, post, deliveryUrlForLogs, type DeadLetter, type DeliveryPolicy } from '../outputs/index.js';
import type { Keys } from '../queue/index.js';

/**
 * Delivers webhook and callback POSTs. Each delivery reads the record from Redis when it runs,
 * so a replay sends what is stored now. After its last attempt a delivery goes to the
 * dead-letter list, from which `docsift deadletter replay` schedules it again.
 */
export interface DeliveryWorkerDeps {
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  metrics: Metrics;
  /** Where deliveries may go (deliveryPolicyOf). */
  policy: DeliveryPolicy;
  /** Each kind signs with its own secret, so a callback receiver cannot forge the queue webhook. */
  secrets: { webhook: string | undefined; callback: string | undefined };
  deadLetterMax: number;
  concurrency?: number;
}

export function startDeliveryWorker(deps: DeliveryWorkerDeps): Worker<Delivery> {
  const log = deps.logger.child({ component: 'deliveries' });
  const worker = new Worker<Delivery>(DELIVERY_QUEUE, async (job: Job<Delivery>) => {
    const delivery = Delivery.parse(job.data);
    const body = await deps.redis.get(deps.keys.result(delivery.documentId));
    if (body === null) throw new Error(`no stored result for ${delivery.documentId}`);
    try {
      await post({
        url: delivery.url, kind: delivery.kind, deliveryId: delivery.deliveryId ?? job.id ?? delivery.documentId, documentId: delivery.documentId,
        body, secret: deps.secrets[delivery.kind], timeoutMs: delivery.timeoutMs,
      }, deps.policy);
    } catch (err) {
      // Refused destinations and redirects fail for good: another attempt would be refused again.
      if (err instanceof DeliveryError && err.permanent) throw new UnrecoverableError(err.message);
      throw err;
    }
    deps.metrics.deliveries.inc({ kind: delivery.kind, result: 'delivered' });
    log.info({ documentId: delivery.documentId, url: deliveryUrlForLogs(delivery.url), kind: delivery.kind, attempt: job.attemptsMade + 1 }, 'delivered');
  }, { connection: deps.redis, prefix: deps.keys.bull(DELIVERY_QUEUE), concurrency: deps.concurrency ?? 8 });
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err instanceof UnrecoverableError || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    deps.metrics.deliveries.inc({ kind: job.data.kind, result: final ? 'dead_lettered' : 'failed' });
    log.warn({ documentId: job.data.documentId, url: deliveryUrlForLogs(job.data.url), attempts: job.attemptsMade, final, err: err.message }, 'delivery failed');
    if (!final) return;
    const entry: DeadLetter = {
      id: randomBytes(6).toString('hex'),
      delivery: job.data,
      error: err.message,
      attempts: job.attemptsMade,
      failedAt: new Date().toISOString(),
    };
    // Capped: a receiver that is down for weeks must not fill Redis with dead letters.
    deps.redis.multi().rpush(deps.keys.deadLetters, JSON.stringify(entry)).ltrim(deps.keys.deadLetters, -deps.deadLetterMax, -1).exec()
      .catch((e: unknown) => log.error({ err: e }, 'could not dead-letter a delivery'));
  });
  worker.on('error', (err) => log.error({ err }, 'delivery worker error'));
  return worker;
}
