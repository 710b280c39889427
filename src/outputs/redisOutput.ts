import type { Redis } from 'ioredis';
import type { ResultRecord } from '../pipeline/index.js';
import type { Keys } from '../queue/keys.js';
import type { ResultOutput } from './output.js';

/**
 * Stores the record and drops a failure record an earlier attempt left, atomically, in one round
 * trip. A script rather than MULTI: ioredis builds a pipeline object that copies every script
 * BullMQ defined on the connection, which cost more CPU per job than the write itself.
 */
const STORE = `redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1`;

/** Always on: the record under <prefix>:result:<documentId>, readable after the job is removed. */
export class RedisOutput implements ResultOutput {
  readonly name = 'redis';
  private readonly store: (result: string, failure: string, json: string) => Promise<unknown>;

  constructor(redis: Redis, private readonly keys: Keys) {
    if (!('docsiftStoreResult' in redis)) redis.defineCommand('docsiftStoreResult', { numberOfKeys: 2, lua: STORE });
    const command = (redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>)['docsiftStoreResult']!;
    this.store = (result, failure, json) => command.call(redis, result, failure, json);
  }

  async write(record: ResultRecord): Promise<void> {
    await this.store(this.keys.result(record.documentId), this.keys.failure(record.documentId), JSON.stringify(record));
  }
}
