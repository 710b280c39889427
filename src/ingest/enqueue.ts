import { createHash } from 'node:crypto';
import type { RedisClient } from '../queue/connection.js';
import { pipelineVersion, type Config, type QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
// The modules, not the folders' indexes: a producer (docsift enqueue, the API) needs these two
// checks, not the outputs, the pipeline and the model behind the indexes (a second of imports).
import { assertDestination, deliveryPolicyOf, type DeliveryPolicy } from '../outputs/webhook/destination.js';
import { sniffFormat } from '../text/detectFormat.js';
import { addDocumentJob, documentIdFor, type DocumentQueue, type DocumentRef, type DocumentStore, type Keys, type NewDocumentJob, type StagedDocument } from '../queue/index.js';

/** Everything about a document but its bytes: a job's fields a producer chooses (docs/JOB-PAYLOAD.md). */
export type EnqueueOptions = Pick<NewDocumentJob, 'filename' | 'source' | 'force' | 'priority' | 'documentType' | 'callbackUrl'> & { metadata?: Record<string, unknown> | undefined };

export type EnqueueInput = EnqueueOptions & { bytes: Buffer };

export interface EnqueueOutcome {
  documentId: string;
  jobId: string;
  sha256: string;
  /** queued: a new job. duplicate: the same document already has a job. done: it already has a result. */
  status: 'queued' | 'duplicate' | 'done';
}

/** A document's bytes as the enqueuer needs them: hash, size, start, and how to store them for a job. */
interface Hashed {
  sha256: string;
  size: number;
  head: Buffer;
  store(holder: string): Promise<DocumentRef>;
}

/**
 * Hands documents to a queue: stores the bytes, then adds a job whose id derives from the
 * content hash and the pipeline version, so enqueueing the same document twice makes one job.
 */
export class Enqueuer {
  readonly pipelineVersion: string;
  private readonly documentTypes: ReadonlySet<string>;
  private readonly callbacks: { policy: DeliveryPolicy; on: boolean };

  constructor(
    config: Config,
    readonly queueConfig: QueueConfig,
    private readonly queue: DocumentQueue,
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    readonly store: DocumentStore,
  ) {
    this.pipelineVersion = pipelineVersion(config, queueConfig);
    this.documentTypes = new Set(config.prompts.types.keys());
    this.callbacks = { policy: deliveryPolicyOf(config), on: config.env.DOCSIFT_CALLBACK_SECRET !== undefined };
  }

  /** Bytes in memory (CLI, watched folders, the API's path enqueue). */
  async enqueue(input: EnqueueInput): Promise<EnqueueOutcome> {
    const { bytes, ...options } = input;
    // Checked before anything is hashed or stored; the worker checks again.
    this.checkSize(bytes.length, options.filename);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return this.plainly(options.filename, () => this.enqueueHashed({ sha256, size: bytes.length, head: bytes, store: (holder) => this.store.put(sha256, bytes, holder) }, options));
  }

  /**
   * Bytes already streamed into the store (API uploads): committed to their place when a job
   * needs them, discarded when the document is a duplicate, already done, or refused.
   */
  async enqueueStaged(staged: StagedDocument, options: EnqueueOptions): Promise<EnqueueOutcome> {
    let committed = false;
    try {
      this.checkSize(staged.size, options.filename);
      return await this.plainly(options.filename, () => this.enqueueHashed({
        ...staged, store: (holder) => { committed = true; return staged.commit(holder); },
      }, options));
    } finally {
      if (!committed) await staged.discard().catch(() => undefined);
    }
  }

  /** Refused here, before anything is stored; the delivery checks again, after DNS. */
  private checkCallback(url: string): void {
    if (!this.callbacks.on) throw new DocsiftError('CALLBACK_NOT_ALLOWED', 'callbacks are off: the operator has set no DOCSIFT_CALLBACK_SECRET to sign them');
    assertDestination(this.callbacks.policy, url);
  }

  private checkSize(size: number, filename: string): void {
    if (size > this.queueConfig.limits.maxBytes) {
      throw new DocsiftError('TOO_LARGE', `${filename} has ${size} bytes; queue ${this.queueConfig.name} allows ${this.queueConfig.limits.maxBytes}`);
    }
  }

  private async plainly(filename: string, enqueue: () => Promise<EnqueueOutcome>): Promise<EnqueueOutcome> {
    try {
      return await enqueue();
    } catch (err) {
      if (err instanceof DocsiftError) throw err;
      // ioredis with no connection: say so plainly; the caller decides whether to retry.
      if (this.redis.status !== 'ready') {
        throw new DocsiftError('REDIS_UNAVAILABLE', `Redis is unreachable (${(err as Error).message}); ${filename} was not enqueued`, { cause: err });
      }
      throw err;
    }
  }

  private async enqueueHashed(document: Hashed, input: EnqueueOptions): Promise<EnqueueOutcome> {
    if (input.documentType && !this.documentTypes.has(input.documentType)) {
      throw new DocsiftError('INVALID_JOB', `unknown document type "${input.documentType}" (known: ${[...this.documentTypes].join(', ')})`);
    }
    if (input.callbackUrl) this.checkCallback(input.callbackUrl);
    const { sha256 } = document;
    const { filename, source, metadata = {}, force, priority, documentType, callbackUrl } = input;
    const documentId = documentIdFor(sha256, this.pipelineVersion, documentType);
    if (!force) {
      // A result first: BullMQ keeps the finished job too, and "done" is the more useful answer.
      if (await this.redis.exists(this.keys.result(documentId))) return { documentId, jobId: documentId, sha256, status: 'done' };
      if (await this.queue.getJob(documentId)) return { documentId, jobId: documentId, sha256, status: 'duplicate' };
    }
    const { jobId, status } = await addDocumentJob(this.queue, this.redis, this.keys, this.queueConfig, {
      documentId, sha256, size: document.size, filename, source, metadata, force, priority, documentType, callbackUrl, detectedType: sniffFormat(document.head) ?? 'unknown', store: document.store,
    });
    return { documentId, jobId, sha256, status };
  }
}
