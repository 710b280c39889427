import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pipelineVersion, type Config, type QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { detectFormat } from '../text/index.js';
import { documentIdFor, JOB_NAME, JobPayload, type DocumentQueue, type DocumentStore, type Keys } from '../queue/index.js';


export interface EnqueueInput {
  bytes: Buffer;
  filename: string;
  source: string;
  metadata?: Record<string, unknown>;
  /** Run again even if this document already has a result for this pipeline version. */
  force?: boolean;
  priority?: number;
  /** Extract this type without classifying (a folder of prompts/). */
  documentType?: string;
  /** POSTed the result when done. */
  callbackUrl?: string;
}

export interface EnqueueOutcome {
  documentId: string;
  jobId: string;
  sha256: string;
  /** queued: a new job. duplicate: the same document already has a job. done: it already has a result. */
  status: 'queued' | 'duplicate' | 'done';
}

/**
 * Hands documents to a queue: stores the bytes, then adds a job whose id derives from the
 * content hash and the pipeline version, so enqueueing the same document twice makes one job.
 */
export class Enqueuer {
  readonly pipelineVersion: string;
  private readonly documentTypes: ReadonlySet<string>;

  constructor(
    config: Config,
    readonly queueConfig: QueueConfig,
    private readonly queue: DocumentQueue,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly store: DocumentStore,
  ) {
    this.pipelineVersion = pipelineVersion(config, queueConfig);
    this.documentTypes = new Set(config.prompts.types.keys());
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueOutcome> {
    try {
      return await this.enqueueOnce(input);
    } catch (err) {
      if (err instanceof DocsiftError) throw err;
      // ioredis with no connection: say so plainly; the caller decides whether to retry.
      if (this.redis.status !== 'ready') {
        throw new DocsiftError('REDIS_UNAVAILABLE', `Redis is unreachable (${(err as Error).message}); ${input.filename} was not enqueued`, { cause: err });
      }
      throw err;
    }
  }

  private async enqueueOnce(input: EnqueueInput): Promise<EnqueueOutcome> {
    // The limit is checked here too so an oversized file never reaches Redis; the worker checks again.
    if (input.bytes.length > this.queueConfig.limits.maxBytes) {
      throw new DocsiftError('TOO_LARGE', `${input.filename} has ${input.bytes.length} bytes; queue ${this.queueConfig.name} allows ${this.queueConfig.limits.maxBytes}`);
    }
    if (input.documentType && !this.documentTypes.has(input.documentType)) {
      throw new DocsiftError('INVALID_JOB', `unknown document type "${input.documentType}" (known: ${[...this.documentTypes].join(', ')})`);
    }
    const sha256 = createHash('sha256').update(input.bytes).digest('hex');
    const documentId = documentIdFor(sha256, this.pipelineVersion, input.documentType);
    if (!input.force) {
      const existing = await this.queue.getJob(documentId);
      if (existing) return { documentId, jobId: documentId, sha256, status: 'duplicate' };
      if (await this.redis.exists(this.keys.result(documentId))) return { documentId, jobId: documentId, sha256, status: 'done' };
    }
    // A forced re-run needs a fresh job id: BullMQ ignores an add whose id already exists.
    const jobId = input.force ? `${documentId}-r${Date.now().toString(36)}` : documentId;
    const ref = await this.store.put(sha256, input.bytes, `${this.queueConfig.name}:${jobId}`);
    const payload = JobPayload.parse({
      v: 1,
      ref,
      sha256,
      documentId,
      filename: input.filename,
      detectedType: detectedType(input.bytes),
      size: input.bytes.length,
      source: input.source,
      metadata: input.metadata ?? {},
      ...(input.documentType ? { documentType: input.documentType } : {}),
      ...(input.callbackUrl ? { callbackUrl: input.callbackUrl } : {}),
      enqueuedAt: new Date().toISOString(),
    });
    const job = await this.queue.add(JOB_NAME, payload, { jobId, ...(input.priority ? { priority: input.priority } : {}) });
    const latest = JSON.stringify({ queue: this.queueConfig.name, jobId: job.id ?? jobId });
    const { recordSeconds } = this.queueConfig.retention;
    await (recordSeconds > 0 ? this.redis.set(this.keys.latestJob(documentId), latest, 'EX', recordSeconds) : this.redis.set(this.keys.latestJob(documentId), latest));
    // add() returns the existing job when the id is taken (a concurrent enqueue of the same bytes).
    const status = job.data.enqueuedAt === payload.enqueuedAt ? 'queued' : 'duplicate';
    return { documentId, jobId, sha256, status };
  }
}

function detectedType(bytes: Buffer): JobPayload['detectedType'] {
  try {
    return detectFormat(bytes);
  } catch {
    return 'unknown';
  }
}
