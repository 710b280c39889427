import type { Config } from '../config/index.js';
import { deliveryPolicy, type DeliveryPolicy } from './webhook/destination.js';

export type { OutputContext, ResultOutput } from './output.js';
export { OutboxOutput } from './outboxOutput.js';
export { createPool, migrate, MIGRATIONS, PostgresOutput } from './postgresOutput.js';
export { RedisOutput } from './redisOutput.js';
export { createDeliveryQueue, Delivery, DELIVERY_QUEUE, DeliveryError, post } from './webhook/deliveries.js';
export { assertDestination, deliveryPolicy, deliveryUrlForLogs } from './webhook/destination.js';
export type { DeliveryPolicy } from './webhook/destination.js';
export type { DeadLetter } from './webhook/deliveries.js';
export { DELIVERY_HEADER, KIND_HEADER, sign, verify, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './webhook/signature.js';
export { WebhookOutput } from './webhookOutput.js';
export { holdForReview, ReviewDesk, reviewReasons } from './review.js';
export { createOutputs, finalOutputs } from './queueOutputs.js';
export type { QueueOutputs } from './queueOutputs.js';

/** Where this installation's deliveries may go: DOCSIFT_CALLBACK_HOSTS and every queue webhook's host. */
export function deliveryPolicyOf(config: Config): DeliveryPolicy {
  return deliveryPolicy(config.env.DOCSIFT_CALLBACK_HOSTS, [...config.queues.values()].flatMap((q) => (q.outputs.webhook ? [q.outputs.webhook.url] : [])));
}
