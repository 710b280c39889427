import { setFor, type RedisClient } from './connection.js';
import type { QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { JOB_NAME, type DocumentQueue } from './documentQueue.js';
import type { Keys } from './keys.js';
import { JobPayload, type DocumentRef } from './payload.js';

/**
 * A job for one document, checked by its producer (the enqueuer, or a worker splitting a mail or
 * handing on to a tier): the payload's fields (docs/JOB-PAYLOAD.md) but the reference, which
 * `store` makes once the payload is valid.
 */
export type NewDocumentJob = Required<Pick<JobPayload, 'documentId' | 'sha256' | 'size' | 'filename' | 'source' | 'metadata' | 'detectedType'>>
  & Partial<Pick<JobPayload, 'force' | 'documentType' | 'callbackUrl' | 'parent' | 'escalation' | 'challenge'>> & {
    priority?: number | undefined;
    /** The parent's BullMQ job (a mail's, a tier's), which waits for this one: BullMQ moves it on when its children are done. */
    flowParent?: { id: string; queue: string };
    /** Stores the bytes for the job (holder: `<queue>:<jobId>`). */
    store(holder: string): Promise<DocumentRef>;
  };

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
