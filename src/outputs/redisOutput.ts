import type { RedisClient } from '../queue/connection.js';
import type { ResultRecord } from '../pipeline/index.js';
import type { Keys } from '../queue/keys.js';
import type { OutputContext, ResultOutput } from './output.js';

/**
 * Stores the record and drops a failure record an earlier attempt left, atomically, in one round
 * trip (both keys are tagged with the document id: one slot on a Cluster). A script rather than
 * MULTI: ioredis builds a pipeline object that copies every script BullMQ defined on the
 * connection, which cost more CPU per job than the write.
 */
const STORE = `if ARGV[2] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('DEL', KEYS[2])
return 1`;

/** Appends a line to a BullMQ job's log as BullMQ's addLog does: only while the job exists (its queue's slot). */
const LOG = `if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
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
  private readonly log: (...args: string[]) => Promise<unknown>;

  constructor(redis: RedisClient, private readonly keys: Keys, private readonly recordSeconds: number) {
    this.store = script(redis, 'docsiftStoreResult', 2, STORE);
    this.log = script(redis, 'docsiftJobLog', 2, LOG);
  }

  async write(record: ResultRecord, context: OutputContext): Promise<void> {
    const ttl = record.review?.status === 'pending' ? 0 : this.recordSeconds;
    await this.store(this.keys.result(record.documentId), this.keys.failure(record.documentId), JSON.stringify(record), String(ttl));
    // BullMQ keeps a job's log under <job key>:logs.
    if (context.jobLog?.line) await this.log(context.jobLog.jobKey, `${context.jobLog.jobKey}:logs`, context.jobLog.line);
  }
}

/** A Lua script defined once per connection (EVALSHA after the first call), declaring its keys. */
function script(redis: RedisClient, name: string, numberOfKeys: number, lua: string): (...args: string[]) => Promise<unknown> {
  if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua });
  const command = (redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>)[name]!;
  return (...args) => command.call(redis, ...args);
}
