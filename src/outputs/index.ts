import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config, QueueConfig } from '../config/index.js';
import { deliveryPolicy, type DeliveryPolicy } from './webhook/destination.js';
import type { Keys } from '../queue/keys.js';
import { OutboxOutput } from './outboxOutput.js';
import type { ResultOutput } from './output.js';
import { PostgresOutput } from './postgresOutput.js';
import { RedisOutput } from './redisOutput.js';
import type { Delivery } from './webhook/deliveries.js';
import { WebhookOutput } from './webhookOutput.js';

export type { OutputContext, ResultOutput } from './output.js';
export { OutboxOutput } from './outboxOutput.js';
export { createPool, migrate, MIGRATIONS, PostgresOutput } from './postgresOutput.js';
export { RedisOutput } from './redisOutput.js';
export { createDeliveryQueue, Delivery, DELIVERY_QUEUE, DeliveryError, post } from './webhook/deliveries.js';
export { assertDestination, deliveryPolicy, redactUrl } from './webhook/destination.js';
export type { DeliveryPolicy } from './webhook/destination.js';
export type { DeadLetter } from './webhook/deliveries.js';
export { DELIVERY_HEADER, KIND_HEADER, sign, verify, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './webhook/signature.js';
export { WebhookOutput } from './webhookOutput.js';
export { ReviewDesk, reviewReasons } from './reviewDesk.js';

/** Where this installation's deliveries may go: DOCSIFT_CALLBACK_HOSTS and every queue webhook's host. */
export function deliveryPolicyOf(config: Config): DeliveryPolicy {
  return deliveryPolicy(config.env.DOCSIFT_CALLBACK_HOSTS, [...config.queues.values()].flatMap((q) => (q.outputs.webhook ? [q.outputs.webhook.url] : [])));
}

/**
 * The outputs a queue writes, in order: Redis (always, first: the record of truth), the outbox
 * and PostgreSQL if configured, and webhook/callback deliveries (scheduled, delivered apart).
 */
export function createOutputs(queue: QueueConfig, deps: { redis: Redis; keys: Keys; deliveries: Queue<Delivery>; pool?: pg.Pool }): ResultOutput[] {
  const outputs: ResultOutput[] = [new RedisOutput(deps.redis, deps.keys, queue.retention.recordSeconds)];
  if (queue.outputs.outbox) outputs.push(new OutboxOutput(queue.outputs.outbox.dir));
  if (queue.outputs.postgres) {
    if (!deps.pool) throw new Error(`queue ${queue.name} writes to PostgreSQL but no pool was given`);
    outputs.push(new PostgresOutput(deps.pool));
  }
  outputs.push(new WebhookOutput(queue, deps.deliveries));
  return outputs;
}
