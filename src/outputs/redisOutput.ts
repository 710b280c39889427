import type { RedisClient } from '../queue/connection.js';
import type { ResultRecord } from '../pipeline/index.js';
import type { Keys } from '../queue/keys.js';
import type { OutputContext, ResultOutput } from './output.js';

/**
 * Stores the record, drops a failure record an earlier attempt left and, when given, appends a
 * line to the BullMQ job's log (as BullMQ's addLog does: only while the job exists), atomically,
 * in one round trip. A script rather than MULTI: ioredis builds a pipeline object that copies
 * every script BullMQ defined on the connection, which cost more CPU per job than the write.
 */
const STORE = `if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('DEL', KEYS[2])
if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[2])
end
return 1`;

/**
 * Always on: the record under <prefix>:result:<documentId>, readable after the job is removed,
 * for the queue's retention.recordSeconds (a record held for review has no expiry until a
 * person decides: it must not vanish from the review list).
 */
export class RedisOutput implements ResultOutput {
  readonly name = 'redis';
  private readonly store: (...args: string[]) => Promise<unknown>;

  constructor(redis: RedisClient, private readonly keys: Keys, private readonly recordSeconds: number) {
    if (!('docsiftStoreResult' in redis)) redis.defineCommand('docsiftStoreResult', { numberOfKeys: 4, lua: STORE });
    const command = (redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>)['docsiftStoreResult']!;
    this.store = (...args) => command.call(redis, ...args);
  }

  async write(record: ResultRecord, context: OutputContext): Promise<void> {
    const { jobKey, line } = context.jobLog ?? { jobKey: '', line: '' };
    // BullMQ keeps a job's log under <job key>:logs.
    const ttl = record.review?.status === 'pending' ? 0 : this.recordSeconds;
    await this.store(this.keys.result(record.documentId), this.keys.failure(record.documentId), jobKey, `${jobKey}:logs`, JSON.stringify(record), line, String(ttl));
  }
}
