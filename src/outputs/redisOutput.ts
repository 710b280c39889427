import type { Redis } from 'ioredis';
import type { ResultRecord } from '../pipeline/index.js';
import type { Keys } from '../queue/keys.js';
import type { ResultOutput } from './output.js';

/** Always on: the record under <prefix>:result:<documentId>, readable after the job is removed. */
export class RedisOutput implements ResultOutput {
  readonly name = 'redis';
  constructor(private readonly redis: Redis, private readonly keys: Keys) {}

  async write(record: ResultRecord): Promise<void> {
    await this.redis.multi()
      .set(this.keys.result(record.documentId), JSON.stringify(record))
      .del(this.keys.failure(record.documentId))
      .exec();
  }
}
