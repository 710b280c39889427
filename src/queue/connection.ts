import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A connection to Redis as docsift uses it: one server, a Sentinel-managed primary, or a Cluster. */
export type RedisClient = Redis | Cluster;

export interface HostPort { host: string; port: number }

/**
 * Where Redis is. REDIS_URL alone: one server. With REDIS_SENTINELS, the URL's host names the
 * Sentinel master group (`redis://:pw@mymaster/0`, as redis-rb and Sidekiq read it) and the
 * sentinels say which server is primary now. With REDIS_CLUSTER_NODES, those are the seed nodes of
 * a Cluster (the rest are discovered) and the URL gives credentials and TLS only.
 */
export interface RedisTarget {
  url: string;
  sentinels?: readonly HostPort[] | undefined;
  sentinelPassword?: string | undefined;
  clusterNodes?: readonly HostPort[] | undefined;
}

export type RedisTopology = 'standalone' | 'sentinel' | 'cluster';

export function topologyOf(target: RedisTarget | string): RedisTopology {
  if (typeof target === 'string') return 'standalone';
  if (target.clusterNodes?.length) return 'cluster';
  return target.sentinels?.length ? 'sentinel' : 'standalone';
}

/** The target the environment names (REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_PASSWORD, REDIS_CLUSTER_NODES). */
export function redisTarget(env: { REDIS_URL: string; REDIS_SENTINELS?: HostPort[] | undefined; REDIS_SENTINEL_PASSWORD?: string | undefined; REDIS_CLUSTER_NODES?: HostPort[] | undefined }): RedisTarget {
  return { url: env.REDIS_URL, sentinels: env.REDIS_SENTINELS, sentinelPassword: env.REDIS_SENTINEL_PASSWORD, clusterNodes: env.REDIS_CLUSTER_NODES };
}

/** The target as logs and errors show it: no password. */
export function describeRedis(target: RedisTarget | string): string {
  const url = typeof target === 'string' ? target : target.url;
  const list = (nodes: readonly HostPort[]) => nodes.map((n) => `${n.host}:${n.port}`).join(',');
  switch (topologyOf(target)) {
    case 'sentinel': return `Sentinel master "${new URL(url).hostname}" via ${list((target as RedisTarget).sentinels!)}`;
    case 'cluster': return `Cluster via ${list((target as RedisTarget).clusterNodes!)}`;
    default: return redactUrl(url);
  }
}

/** ioredis's wait before reconnect attempt `times`: 400 ms doubling to 10 s. */
const reconnectDelay = (times: number) => Math.min(200 * 2 ** Math.min(times, 6), 10_000);

/**
 * One client per process, shared by docsift's own keys and BullMQ (which duplicates it for its
 * blocking connection). maxRetriesPerRequest: null is what BullMQ workers require: a command
 * waits for Redis to come back (a restart, a Sentinel failover) instead of failing after 20 tries.
 * Other processes fail a command fast, so an API answers 503 while Redis is away.
 */
export function createRedis(target: string, options: ClientOptions): Redis;
export function createRedis(target: RedisTarget | string, options: ClientOptions): RedisClient;
export function createRedis(target: RedisTarget | string, options: ClientOptions): RedisClient {
  const t: RedisTarget = typeof target === 'string' ? { url: target } : target;
  const url = new URL(t.url);
  const tls = url.protocol === 'rediss:' ? {} : undefined;
  const common: RedisOptions = {
    maxRetriesPerRequest: options.forWorker ? null : 3,
    enableOfflineQueue: options.forWorker,
    lazyConnect: true,
    retryStrategy: reconnectDelay,
    // A primary demoted by a failover refuses writes: reconnect (Sentinel names the new one) and
    // send the command again. Safe: a refused command, BullMQ's scripts included, did nothing.
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
  const db = Number(url.pathname.slice(1) || 0);
  let redis: RedisClient;
  switch (topologyOf(t)) {
    case 'sentinel':
      redis = new Redis({
        ...common, db, tls,
        sentinels: t.sentinels!.map((n) => ({ ...n })),
        name: url.hostname,
        ...(t.sentinelPassword ? { sentinelPassword: t.sentinelPassword } : {}),
        enableTLSForSentinelMode: Boolean(tls), ...(tls ? { sentinelTLS: tls } : {}),
        sentinelRetryStrategy: reconnectDelay,
      });
      break;
    case 'cluster': {
      const { enableOfflineQueue, lazyConnect, retryStrategy: _, ...redisOptions } = common;
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue, lazyConnect,
        redisOptions: { ...redisOptions, tls },
        clusterRetryStrategy: reconnectDelay,
      };
      redis = new Cluster(t.clusterNodes!.map((n) => ({ ...n })), clusterOptions);
      break;
    }
    default:
      redis = new Redis(t.url, common);
  }
  // ioredis reconnects by itself; without a listener each failed try prints a stack trace.
  redis.on('error', (err: Error) => {
    lastErrors.set(redis, err);
    options.onError?.(err);
  });
  return redis;
}

/** A second connection to the same Redis for blocking reads (QueueEvents), waiting through outages. */
export function blockingCopy(redis: RedisClient): RedisClient {
  if (redis instanceof Cluster) return redis.duplicate(undefined, { enableOfflineQueue: true, redisOptions: { ...redis.options.redisOptions, maxRetriesPerRequest: null } });
  return redis.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true });
}

/** The JSON record under a key, or null when there is none. */
export async function getJson<T>(redis: RedisClient, key: string): Promise<T | null> {
  const raw = await redis.get(key);
  return raw ? (JSON.parse(raw) as T) : null;
}

/** Writes a record that lives `seconds` (0: no expiry, as retention.recordSeconds 0 asks). */
export function setFor(redis: RedisClient, key: string, value: string, seconds: number): Promise<unknown> {
  return seconds > 0 ? redis.set(key, value, 'EX', seconds) : redis.set(key, value);
}

/**
 * Keys matching a glob, in batches, each with the server holding them: on a Cluster SCAN runs on
 * every primary (the cluster client would ask one node). Read a batch through its server with
 * single-key commands in a pipeline, not MGET: the keys share a node, not a slot.
 */
export async function* scanKeys(redis: RedisClient, pattern: string): AsyncGenerator<{ keys: string[]; node: Redis }> {
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (found.length) yield { keys: found, node };
    } while (cursor !== '0');
  }
}

interface ClientOptions { forWorker: boolean; onError?: (err: Error) => void }

const lastErrors = new WeakMap<RedisClient, Error>();

/** Connects, or fails with a message that says where Redis was expected. */
export async function connectRedis(redis: RedisClient, target: RedisTarget | string): Promise<void> {
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const cause = lastErrors.get(redis) ?? (err as Error);
    throw new Error(`cannot reach Redis at ${describeRedis(target)}: ${cause.message} (set REDIS_URL, or start redis-server)`);
  }
}

/**
 * For long-running services: waits for Redis with exponential backoff (1 s doubling to 30 s),
 * logging each wait, instead of exiting and being restarted in a loop by systemd or Kubernetes.
 */
export async function waitForRedis(redis: RedisClient, target: RedisTarget | string, log: (attempt: number, delayMs: number, reason: string) => void, signal?: AbortSignal): Promise<void> {
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
      if (signal?.aborted) throw new Error(`gave up waiting for Redis at ${describeRedis(target)}`);
      const delayMs = Math.min(1000 * 2 ** (attempt - 1), 30_000);
      log(attempt, delayMs, (lastErrors.get(redis) ?? (err as Error)).message);
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
