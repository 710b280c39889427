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
import { createPool } from './postgresOutput.js';
import { createDeliveryQueue, type Delivery } from './webhook/deliveries.js';
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

/** What a process's outputs share: one delivery queue, one PostgreSQL pool (lazy: no connection until used), the bucket. */
export interface OutputDeps {
  deliveries: Queue<Delivery>;
  pool?: pg.Pool | undefined;
  s3?: S3Bucket | undefined;
}

/** Opens a process's output connections; close() ends the queue and the pool (the bucket is its opener's). */
export function openOutputDeps(env: { DOCSIFT_DATABASE_URL?: string | undefined }, redis: RedisClient, keys: Keys, s3: S3Bucket | undefined): OutputDeps & { close(): Promise<void> } {
  const deliveries = createDeliveryQueue(redis, keys);
  const pool = env.DOCSIFT_DATABASE_URL ? createPool(env.DOCSIFT_DATABASE_URL) : undefined;
  return { deliveries, pool, s3, close: async () => { await deliveries.close(); await pool?.end(); } };
}

export function createOutputs(queue: QueueConfig, deps: OutputDeps & { redis: RedisClient; keys: Keys }): QueueOutputs {
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
