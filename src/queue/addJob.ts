import { setFor, type RedisClient } from './connection.js';
import type { QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { JOB_NAME, type DocumentQueue } from './documentQueue.js';
import type { Keys } from './keys.js';
import { JobPayload, type DocumentRef } from './payload.js';

/** A job for one document, checked by its producer (the enqueuer, or a worker splitting a mail). */
export interface NewDocumentJob {
  documentId: string;
  sha256: string;
  size: number;
  filename: string;
  source: string;
  metadata: Record<string, unknown>;
  detectedType: JobPayload['detectedType'];
  force?: boolean;
  documentType?: string;
  callbackUrl?: string;
  priority?: number;
  /** The mail this document came out of, and how many mails deep it is. */
  parent?: { documentId: string; depth: number };
  /** The tier that handed this document on, and why. */
  escalation?: { from: string; queue: string; reasons: string[]; fields?: string[] };
  /** The document whose fields this one's answer checks (a challenger's job). */
  challenge?: { from: string; queue: string };
  /** The mail's BullMQ job, which waits for this one (a flow: BullMQ moves it on when its children are done). */
  flowParent?: { id: string; queue: string };
  /** Stores the bytes for the job (holder: `<queue>:<jobId>`); called once the payload is valid. */
  store(holder: string): Promise<DocumentRef>;
}

/**
 * Adds a document's job: the payload checked against the contract before the bytes are stored
 * (a refused document leaves nothing behind), then the job under a content-derived id, then the
 * pointer to the document's latest job. `duplicate` when the id was taken meanwhile.
 */
export async function addDocumentJob(queue: DocumentQueue, redis: RedisClient, keys: Keys, queueConfig: QueueConfig, input: NewDocumentJob): Promise<{ jobId: string; status: 'queued' | 'duplicate' }> {
  // A forced re-run needs a fresh job id: BullMQ ignores an add whose id already exists.
  const jobId = input.force ? `${input.documentId}-r${Date.now().toString(36)}` : input.documentId;
  const { store, priority, flowParent, ...fields } = input;
  const payload = JobPayload.safeParse({ v: 1, ref: { kind: 'redis', key: keys.document(input.sha256) }, ...fields, enqueuedAt: new Date().toISOString() });
  if (!payload.success) throw new DocsiftError('INVALID_JOB', `the job would break the payload contract: ${payload.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const data = { ...payload.data, ref: await store(`${queueConfig.name}:${jobId}`) };
  const job = await queue.add(JOB_NAME, data, {
    jobId, priority,
    // A part that fails for good is recorded as failed by the parent, which still completes.
    ...(flowParent ? { parent: flowParent, ignoreDependencyOnFailure: true } : {}),
  });
  const latest = JSON.stringify({ queue: queueConfig.name, jobId: job.id ?? jobId });
  await setFor(redis, keys.latestJob(input.documentId), latest, queueConfig.retention.recordSeconds);
  // add() returns the existing job when the id is taken (a concurrent enqueue of the same bytes).
  return { jobId, status: job.data.enqueuedAt === data.enqueuedAt ? 'queued' : 'duplicate' };
}
