import { getQueue, loadConfig, type Config } from '../../config/index.js';
import type { ResultRecord } from '../../pipeline/record.js';
import {
  connectRedis, createDocumentQueue, createDocumentStore, createRedis, keys as makeKeys,
  type DocumentQueue, type DocumentStore, type Keys,
} from '../../queue/index.js';
import { findDocument, publicState, readResult } from '../documentStatus.js';
import { Enqueuer } from '../enqueue.js';
import { pollForResult, readInput, type DocsiftClient, type DocumentInput, type DocumentState, type Enqueued, type EnqueueOptions } from './client.js';
import type { Redis } from 'ioredis';

/**
 * The client for systems on the same network as Redis: it enqueues and reads results directly,
 * with no API server in between. It reads the same configuration as the workers (environment,
 * DOCSIFT_HOME's queues/ and prompts/), since job ids depend on the pipeline version.
 */
export class RedisClient implements DocsiftClient {
  private readonly queues = new Map<string, { queue: DocumentQueue; enqueuer: Enqueuer }>();
  private readonly store: DocumentStore;

  private constructor(private readonly config: Config, private readonly redis: Redis, private readonly keys: Keys) {
    this.store = createDocumentStore(config.env, redis, keys);
  }

  static async connect(env: NodeJS.ProcessEnv = process.env): Promise<RedisClient> {
    const config = loadConfig(env);
    const redis = createRedis(config.env.REDIS_URL, { forWorker: false });
    await connectRedis(redis, config.env.REDIS_URL);
    return new RedisClient(config, redis, makeKeys(config.env.DOCSIFT_PREFIX));
  }

  private open(name: string): { queue: DocumentQueue; enqueuer: Enqueuer } {
    let q = this.queues.get(name);
    if (!q) {
      const queueConfig = getQueue(this.config, name);
      const queue = createDocumentQueue(queueConfig, this.redis, this.keys);
      q = { queue, enqueuer: new Enqueuer(this.config, queueConfig, queue, this.redis, this.keys, this.store) };
      this.queues.set(name, q);
    }
    return q;
  }

  async enqueue(input: DocumentInput, options: EnqueueOptions = {}): Promise<Enqueued> {
    const queue = options.queue ?? 'documents';
    const { bytes, filename } = await readInput(input, options);
    const outcome = await this.open(queue).enqueuer.enqueue({
      bytes, filename, source: 'client', metadata: options.metadata ?? {}, force: options.force ?? false,
      ...(options.priority ? { priority: options.priority } : {}),
    });
    return { documentId: outcome.documentId, jobId: outcome.jobId, queue, status: outcome.status };
  }

  async status(documentId: string): Promise<DocumentState | null> {
    const queues = new Map([...this.config.queues.keys()].map((name) => [name, this.open(name).queue]));
    const { status } = await findDocument(queues, this.redis, this.keys, documentId);
    if (status.state === 'unknown') return null;
    const { state, stage, attempts, error } = publicState(status);
    return { documentId, state, stage, attempts, error };
  }

  result(documentId: string): Promise<ResultRecord | null> {
    return readResult(this.redis, this.keys, documentId);
  }

  waitForResult(documentId: string, options?: { timeoutMs?: number; pollMs?: number }): Promise<ResultRecord> {
    return pollForResult(this, documentId, options);
  }

  async close(): Promise<void> {
    for (const q of this.queues.values()) await q.queue.close();
    await this.redis.quit();
  }
}
