import { Redis } from 'ioredis';

/**
 * One ioredis client per process, shared by docsift's own keys and BullMQ (which duplicates it
 * for its blocking connection). maxRetriesPerRequest: null is what BullMQ workers require: a
 * command waits for Redis to come back instead of failing after 20 tries.
 */
export function createRedis(url: string, options: { forWorker: boolean }): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: options.forWorker ? null : 3,
    enableOfflineQueue: options.forWorker,
    lazyConnect: true,
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 6), 10_000),
  });
}

/** Connects, or fails with a message that says where Redis was expected. */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${(err as Error).message} (set REDIS_URL, or start redis-server)`);
  }
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
