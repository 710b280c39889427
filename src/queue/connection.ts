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

/**
 * For long-running services: waits for Redis with exponential backoff (1 s doubling to 30 s),
 * logging each wait, instead of exiting and being restarted in a loop by systemd or Kubernetes.
 */
export async function waitForRedis(redis: Redis, url: string, log: (attempt: number, delayMs: number, reason: string) => void, signal?: AbortSignal): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (redis.status === 'wait' || redis.status === 'end') await redis.connect();
      // While ioredis reconnects, a command waits in its offline queue: bound the wait to log progress.
      await Promise.race([
        redis.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref()),
      ]);
      return;
    } catch (err) {
      if (signal?.aborted) throw new Error(`gave up waiting for Redis at ${redactUrl(url)}`);
      const delayMs = Math.min(1000 * 2 ** (attempt - 1), 30_000);
      log(attempt, delayMs, (lastErrors.get(redis) ?? (err as Error)).message);
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
