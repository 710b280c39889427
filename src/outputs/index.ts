import type { Redis } from 'ioredis';
import type { QueueConfig } from '../config/index.js';
import type { Keys } from '../queue/keys.js';
import { OutboxOutput } from './outboxOutput.js';
import type { ResultOutput } from './output.js';
import { RedisOutput } from './redisOutput.js';

export type { ResultOutput } from './output.js';
export { OutboxOutput } from './outboxOutput.js';
export { RedisOutput } from './redisOutput.js';

/** The outputs a queue writes to: Redis always, then those its file names. */
export function createOutputs(queue: QueueConfig, redis: Redis, keys: Keys): ResultOutput[] {
  const outputs: ResultOutput[] = [new RedisOutput(redis, keys)];
  if (queue.outputs.outbox) outputs.push(new OutboxOutput(queue.outputs.outbox.dir));
  return outputs;
}
