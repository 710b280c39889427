import { createHash } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import { pollForResult, readInput, type DocsiftClient, type DocumentInput, type DocumentState, type Enqueued, type EnqueueOptions } from './client.js';
import type { FailureRecord, ResultRecord } from './records.js';

export interface RedisClientOptions {
  /** redis:// or rediss:// URL of docsift's Redis (default redis://127.0.0.1:6379). */
  url?: string;
  /** DOCSIFT_PREFIX of the installation (default docsift). */
  prefix?: string;
  /** Seconds the enqueued bytes live at most (default 7 days, as docsift's own store). */
  bytesTtlSeconds?: number;
  /** Extra ioredis options (TLS, timeouts). */
  redis?: RedisOptions;
  /**
   * A connection of your own instead of `url`: an ioredis client for Sentinel, or an ioredis
   * Cluster (docsift's keys are hash-tagged there; the client follows the layout workers publish).
   * It needs maxRetriesPerRequest: null, as BullMQ does; close() leaves it open.
   */
  connection?: Redis | Cluster;
}

/** Where a queue's keys are, as workers publish them with its pipeline version (docs/JOB-PAYLOAD.md). */
interface Published {
  pipelineVersion: string;
  keys?: { bull: string; document: string; documentHolders: string; result: string; failure: string; latestJob: string };
}

/**
 * The client for systems on the same network as Redis: it enqueues and reads results directly,
 * with no API server in between, through the documented contract only (docs/JOB-PAYLOAD.md): the
 * queue's pipeline version as workers publish it, the canonical document id, the bytes under
 * their document key with the job as holder, BullMQ's Queue.add, and the result and failure keys.
 */
export class RedisClient implements DocsiftClient {
  private readonly queues = new Map<string, Queue>();
  /** Key templates by kind, from the first queue whose published layout was read. */
  private layout: Published['keys'] | undefined;

  private constructor(private readonly redis: Redis | Cluster, private readonly prefix: string, private readonly ttl: number, private readonly owned: boolean) {}

  static async connect(options: RedisClientOptions = {}): Promise<RedisClient> {
    if (options.connection) return new RedisClient(options.connection, options.prefix ?? 'docsift', options.bytesTtlSeconds ?? 7 * 24 * 3600, false);
    const redis = new Redis(options.url ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null, lazyConnect: true, ...options.redis });
    await redis.connect();
    return new RedisClient(redis, options.prefix ?? 'docsift', options.bytesTtlSeconds ?? 7 * 24 * 3600, true);
  }

  private async queue(name: string): Promise<Queue> {
    let q = this.queues.get(name);
    if (!q) {
      const published = await this.published(name).catch(() => null);
      q = new Queue(name, { connection: this.redis, prefix: published?.keys?.bull ?? `${this.prefix}:bull` });
      this.queues.set(name, q);
    }
    return q;
  }

  private async published(queue: string): Promise<Published> {
    const raw = await this.redis.get(`${this.prefix}:pipeline:${queue}`);
    if (!raw) throw new Error(`queue ${queue} has no published pipeline version (${this.prefix}:pipeline:${queue}): start a docsift worker or API for it first`);
    const published = JSON.parse(raw) as Published;
    this.layout ??= published.keys;
    return published;
  }

  /** The queue's pipeline version, as its workers and API servers publish it. */
  async pipelineVersion(queue = 'documents'): Promise<string> {
    return (await this.published(queue)).pipelineVersion;
  }

  async enqueue(input: DocumentInput, options: EnqueueOptions = {}): Promise<Enqueued> {
    const queue = options.queue ?? 'documents';
    const { bytes, filename } = await readInput(input, options);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const documentId = `${sha256.slice(0, 32)}-${await this.pipelineVersion(queue)}`;
    if (!options.force) {
      if (await this.redis.exists(this.key('result', documentId))) return { documentId, jobId: documentId, queue, status: 'done' };
      if (await (await this.queue(queue)).getJob(documentId)) return { documentId, jobId: documentId, queue, status: 'duplicate' };
    }
    // A forced re-run needs a job id of its own: BullMQ ignores an add whose id exists.
    const jobId = options.force ? `${documentId}-r${Date.now().toString(36)}` : documentId;
    const key = this.layout?.document.replace('<sha256>', sha256) ?? `${this.prefix}:doc:${sha256}`;
    const holders = this.layout?.documentHolders.replace('<sha256>', sha256) ?? `${key}:holders`;
    await this.redis.multi()
      .set(key, bytes, 'EX', this.ttl)
      .sadd(holders, `${queue}:${jobId}`)
      .expire(holders, this.ttl)
      .exec();
    const job = await (await this.queue(queue)).add('document', {
      v: 1, ref: { kind: 'redis', key }, sha256, documentId, filename, size: bytes.length, source: 'client',
      metadata: options.metadata ?? {}, ...(options.force ? { force: true } : {}), enqueuedAt: new Date().toISOString(),
    }, { jobId, ...(options.priority ? { priority: options.priority } : {}) });
    // Where the API and docsift's CLI look for a document's latest job (a forced one has its own id).
    await this.redis.set(this.key('job', documentId), JSON.stringify({ queue, jobId }), 'EX', 30 * 24 * 3600);
    return { documentId, jobId: job.id ?? jobId, queue, status: 'queued' };
  }

  /**
   * Where a document stands: its latest job (docsift's producers record it), else a job under the
   * canonical id in the queues this client used and "documents", else its result or failure.
   */
  async status(documentId: string): Promise<DocumentState | null> {
    if (!this.layout) await this.queue('documents');
    const latest = await this.redis.get(this.key('job', documentId));
    const candidates: Array<{ queue: string; jobId: string }> = latest
      ? [JSON.parse(latest) as { queue: string; jobId: string }]
      : [...new Set(['documents', ...this.queues.keys()])].map((queue) => ({ queue, jobId: documentId }));
    for (const { queue, jobId } of candidates) {
      const q = await this.queue(queue);
      const state = await q.getJobState(jobId);
      if (state === 'waiting' || state === 'prioritized' || state === 'waiting-children' || state === 'active' || state === 'delayed') {
        const job = await q.getJob(jobId);
        const progress = state === 'active' && job && typeof job.progress === 'object' ? (job.progress as { stage?: string }) : {};
        return { documentId, state: state === 'active' || state === 'delayed' ? state : 'waiting', stage: progress.stage ?? null, attempts: job?.attemptsMade ?? 0, error: null };
      }
    }
    const record = await this.result(documentId);
    if (record) return { documentId, state: 'done', stage: null, attempts: record.attempts, error: null };
    const raw = await this.redis.get(this.key('failure', documentId));
    const failure = raw ? (JSON.parse(raw) as FailureRecord) : null;
    if (failure && !failure.willRetry) return { documentId, state: 'failed', stage: null, attempts: failure.attempts, error: { code: failure.code, message: failure.message } };
    if (failure) return { documentId, state: 'delayed', stage: null, attempts: failure.attempts, error: null };
    return null;
  }

  async result(documentId: string): Promise<ResultRecord | null> {
    // Record keys are the same for every queue: any published layout names them.
    if (!this.layout) await this.queue('documents');
    const raw = await this.redis.get(this.key('result', documentId));
    return raw ? (JSON.parse(raw) as ResultRecord) : null;
  }

  waitForResult(documentId: string, options?: { timeoutMs?: number; pollMs?: number }): Promise<ResultRecord> {
    return pollForResult(this, documentId, options);
  }

  async close(): Promise<void> {
    for (const q of this.queues.values()) await q.close();
    if (this.owned) await this.redis.quit();
  }

  private key(kind: 'result' | 'failure' | 'job', documentId: string): string {
    const template = this.layout?.[kind === 'job' ? 'latestJob' : kind];
    return template?.replace('<documentId>', documentId) ?? `${this.prefix}:${kind}:${documentId}`;
  }
}
