import { createHash } from 'node:crypto';
import type { RedisClient } from './connection.js';
import { z } from 'zod';
import type { Keys } from './keys.js';

/**
 * The job payload: the contract between every producer (CLI, API, watched folder, or a
 * back-office system calling BullMQ's Queue.add itself) and the worker. Validated when
 * enqueued and again when dequeued. The document's bytes are never in the job, only a
 * reference to them. docs/JOB-PAYLOAD.md explains each field.
 */
export const DocumentRef = z.discriminatedUnion('kind', [
  /** Bytes in Redis under this key (written by docsift's redis store). */
  z.object({ kind: z.literal('redis'), key: z.string().min(1) }).strict(),
  /** An object in the S3 bucket of DOCSIFT_STORE=s3: `<DOCSIFT_S3_PREFIX>doc/<sha256>`. */
  z.object({ kind: z.literal('s3'), key: z.string().min(1).max(1024) }).strict(),
  /** A file every worker can read at this absolute path (shared filesystem). */
  z.object({ kind: z.literal('file'), path: z.string().startsWith('/', 'must be an absolute path') }).strict(),
]);
export type DocumentRef = z.infer<typeof DocumentRef>;

export const JobPayload = z.object({
  /** Contract version. */
  v: z.literal(1).default(1),
  ref: DocumentRef,
  /** Hex sha256 of the bytes. Optional for external producers: the worker computes it. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex sha256').optional(),
  /** Assigned by docsift's enqueue (sha256 + pipeline version); the worker derives it when absent. */
  documentId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/).optional(),
  filename: z.string().max(1024).default('document'),
  /** What the producer detected from the bytes; informational, the worker detects again. */
  detectedType: z.enum(['pdf', 'image', 'docx', 'xlsx', 'html', 'csv', 'eml', 'msg', 'text', 'markdown', 'unknown']).default('unknown'),
  size: z.number().int().min(0).optional(),
  /**
   * Skip classification and extract this document type (a folder of prompts/), as a watched
   * folder's inbox/invoices/ does. Part of the document id: the same bytes as "invoice" and as
   * classified are two documents.
   */
  documentType: z.string().regex(/^[a-z][a-z0-9_]*$/).optional(),
  /** Who enqueued it: cli, api, watch:<dir>, or anything a back-office system chooses. */
  source: z.string().max(256).default('bullmq'),
  /** POSTed the result record when done (signed when DOCSIFT_WEBHOOK_SECRET is set), retried, dead-lettered. */
  callbackUrl: z.string().regex(/^https?:\/\//, 'an http:// or https:// URL').max(2048).optional(),
  /**
   * Process the document even when it already has a result (a forced re-run, which replaces it).
   * Without it, a job for a document that another job already completed returns that result.
   */
  force: z.boolean().default(false),
  /**
   * Set by docsift on a document that came out of an e-mail: the mail's document id, and how many
   * mails deep the document is (1: attached to a mail; 2: to a mail attached to a mail). A mail
   * at limits.maxMailDepth is listed by its parent, not opened.
   */
  parent: z.object({ documentId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), depth: z.number().int().min(1).max(10) }).strict().optional(),
  /**
   * Set by docsift on a document handed on to a larger model's tier: the first tier's document
   * and queue, and why. Its result goes to the store of record only; the first tier's job writes
   * the final record to every output.
   */
  escalation: z.object({
    from: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
    queue: z.string().max(128),
    reasons: z.array(z.string().max(2000)).max(100),
    /** Re-extract only these top-level fields (escalate.fields "doubtful"); the first tier keeps the rest. */
    fields: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).min(1).max(200).optional(),
  }).strict().optional(),
  /** Set by docsift on a document a challenger model answers: the document whose fields it checks. Its result goes to the store of record only. */
  challenge: z.object({ from: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), queue: z.string().max(128) }).strict().optional(),
  /** Caller metadata, copied onto the result untouched. */
  metadata: z.record(z.string(), z.unknown()).default({}),
  enqueuedAt: z.string().optional(),
}).strict();

export type JobPayload = z.infer<typeof JobPayload>;
export type JobPayloadInput = z.input<typeof JobPayload>;

/**
 * documentId = first 32 hex of sha256 + pipeline version (+ fixed type) (+ a hash of the fields a
 * tier re-extracts alone): same bytes, same pipeline, same question, same id.
 */
export function documentIdFor(sha256: string, pipelineVersion: string, documentType?: string, onlyFields?: readonly string[]): string {
  const fields = onlyFields ? `-f${createHash('sha256').update([...onlyFields].sort().join(',')).digest('hex').slice(0, 8)}` : '';
  return `${sha256.slice(0, 32)}-${pipelineVersion}${documentType ? `-${documentType}` : ''}${fields}`;
}

/** What a foreign producer needs to name a queue's documents as docsift does (keys.pipeline). */
export interface PipelineInfo {
  queue: string;
  pipelineVersion: string;
  /** Version of every prompt the queue's pipeline uses. */
  prompts: Record<string, string>;
}

/**
 * Publishes a queue's pipeline version under `<prefix>:pipeline:<queue>` (workers and API servers
 * at start), with where the queue's keys are: they are hash-tagged on a Redis Cluster, and a
 * producer that follows `keys` (BullMQ's prefix; `<sha256>` and `<documentId>` to fill in) works
 * on either layout.
 */
export async function publishPipeline(redis: RedisClient, keys: Keys, info: PipelineInfo): Promise<void> {
  const layout = {
    bull: keys.bull(info.queue), document: keys.document('<sha256>'), documentHolders: keys.documentHolders('<sha256>'),
    result: keys.result('<documentId>'), failure: keys.failure('<documentId>'), latestJob: keys.latestJob('<documentId>'),
  };
  await redis.set(keys.pipeline(info.queue), JSON.stringify({ ...info, keys: layout }));
}
