import type { Queue } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import type pg from 'pg';
import type { QueueConfig } from '../config/index.js';
import type { Keys } from '../queue/keys.js';
import type { S3Bucket } from '../queue/s3.js';
import { OutboxOutput, S3OutboxOutput } from './outboxOutput.js';
import type { ResultOutput } from './output.js';
import { PostgresOutput } from './postgresOutput.js';
import { RedisOutput } from './redisOutput.js';
import type { Delivery } from './webhook/deliveries.js';
import { WebhookOutput } from './webhookOutput.js';

/** Where a queue's results go. */
export interface QueueOutputs {
  /**
   * Redis: the record of truth, which status, result and review read. Written first; the only
   * output a record held for review reaches until a person decides.
   */
  readonly storeOfRecord: ResultOutput;
  /** The outbox and PostgreSQL if configured, and webhook/callback deliveries: final records only. */
  readonly others: readonly ResultOutput[];
}

export function createOutputs(queue: QueueConfig, deps: { redis: RedisClient; keys: Keys; deliveries: Queue<Delivery>; pool?: pg.Pool; s3?: S3Bucket | undefined }): QueueOutputs {
  const others: ResultOutput[] = [];
  if (queue.outputs.outbox) others.push(new OutboxOutput(queue.outputs.outbox.dir));
  if (queue.outputs.s3) {
    if (!deps.s3) throw new Error(`queue ${queue.name} writes to S3 but no bucket was given`);
    others.push(new S3OutboxOutput(deps.s3, queue.outputs.s3.prefix));
  }
  if (queue.outputs.postgres) {
    if (!deps.pool) throw new Error(`queue ${queue.name} writes to PostgreSQL but no pool was given`);
    others.push(new PostgresOutput(deps.pool));
  }
  others.push(new WebhookOutput(queue, deps.deliveries));
  return { storeOfRecord: new RedisOutput(deps.redis, deps.keys, queue.retention.recordSeconds), others };
}

/** Every output of a final record, the store of record first. */
export function finalOutputs(outputs: QueueOutputs): ResultOutput[] {
  return [outputs.storeOfRecord, ...outputs.others];
}
