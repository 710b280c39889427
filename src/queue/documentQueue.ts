import { Queue, type DefaultJobOptions } from 'bullmq';
import type { RedisClient } from './connection.js';
import type { QueueConfig } from '../config/index.js';
import type { Keys } from './keys.js';
import type { JobPayload } from './payload.js';

export type DocumentQueue = Queue<JobPayload, unknown, 'document'>;

/** BullMQ's job name for documents; the payload contract is the same for every queue. */
export const JOB_NAME = 'document';

export function createDocumentQueue(queue: QueueConfig, redis: RedisClient, keys: Keys): DocumentQueue {
  return new Queue<JobPayload, unknown, 'document'>(queue.name, {
    connection: redis,
    prefix: keys.bull(queue.name),
    defaultJobOptions: jobOptionsFor(queue),
  });
}

/** Retries, backoff and retention of a queue's jobs, from its queue file. */
export function jobOptionsFor(queue: QueueConfig): DefaultJobOptions {
  return {
    attempts: queue.attempts,
    backoff: { type: queue.backoff.type, delay: queue.backoff.delayMs },
    removeOnComplete: { count: queue.retention.completed, ...age(queue) },
    removeOnFail: { count: queue.retention.failed, ...age(queue) },
  };
}

/** BullMQ's age is in seconds, like recordSeconds; 0 means no age limit. */
function age(queue: QueueConfig): { age?: number } {
  return queue.retention.recordSeconds > 0 ? { age: queue.retention.recordSeconds } : {};
}
