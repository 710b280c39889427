import { Redis } from 'ioredis';

/**
 * One ioredis client per process, shared by docsift's own keys and BullMQ (which duplicates it
 * for its blocking connection). maxRetriesPerRequest: null is what BullMQ workers require: a
 * command waits for Redis to come back instead of failing after 20 tries.
 */
export function createRedis(url: string, options: { forWorker: boolean; onError?: (err: Error) => void }): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: options.forWorker ? null : 3,
    enableOfflineQueue: options.forWorker,
    lazyConnect: true,
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 6), 10_000),
  });
  // ioredis reconnects by itself; without a listener each failed try prints a stack trace.
  redis.on('error', (err: Error) => {
    lastErrors.set(redis, err);
    options.onError?.(err);
  });
  return redis;
}

const lastErrors = new WeakMap<Redis, Error>();

/** Connects, or fails with a message that says where Redis was expected. */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const cause = lastErrors.get(redis) ?? (err as Error);
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${cause.message} (set REDIS_URL, or start redis-server)`);
  }
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
