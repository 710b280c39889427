import type { Redis } from 'ioredis';
import { parseFailure } from '../infra/errors.js';
import type { FailureRecord, ResultRecord } from '../pipeline/index.js';
import type { DocumentQueue, Keys } from '../queue/index.js';

export type DocumentStatus =
  | { state: 'done'; documentId: string; record: ResultRecord }
  | { state: 'failed'; documentId: string; code: string; message: string; attempts: number }
  | { state: 'waiting' | 'active' | 'delayed'; documentId: string; attempts: number; stage: string | null; progress: number }
  | { state: 'unknown'; documentId: string };

/**
 * Where a document stands, from its job if BullMQ still has it, else from the result or failure
 * record that outlives the job.
 */
export async function documentStatus(queue: DocumentQueue, redis: Redis, keys: Keys, documentId: string, jobId = documentId): Promise<DocumentStatus> {
  // State first, then the job: a job read first and found failed a moment later would still
  // carry the empty failedReason of its active snapshot.
  const state = await queue.getJobState(jobId);
  const job = state === 'unknown' ? undefined : await queue.getJob(jobId);
  if (job) {
    if (state === 'completed') {
      const record = (job.returnvalue as ResultRecord | null) ?? (await readResult(redis, keys, documentId));
      if (record) return { state: 'done', documentId, record };
    } else if (state === 'failed') {
      const { code, message } = parseFailure(job.failedReason);
      return { state: 'failed', documentId, code, message, attempts: job.attemptsMade };
    } else {
      const progress = typeof job.progress === 'object' ? (job.progress as { stage?: string; percent?: number }) : {};
      return {
        state: state === 'active' || state === 'delayed' ? state : 'waiting',
        documentId,
        attempts: job.attemptsMade,
        stage: state === 'active' ? progress.stage ?? null : null,
        progress: state === 'active' ? progress.percent ?? 0 : 0,
      };
    }
  }
  const record = await readResult(redis, keys, documentId);
  if (record) return { state: 'done', documentId, record };
  const failure = await redis.get(keys.failure(documentId));
  if (failure) {
    const f = JSON.parse(failure) as FailureRecord;
    if (!f.willRetry) return { state: 'failed', documentId, code: f.code, message: f.message, attempts: f.attempts };
  }
  return { state: 'unknown', documentId };
}

export async function readResult(redis: Redis, keys: Keys, documentId: string): Promise<ResultRecord | null> {
  const raw = await redis.get(keys.result(documentId));
  return raw ? (JSON.parse(raw) as ResultRecord) : null;
}

/**
 * Polls until every document is done or failed, or the timeout passes (then the rest are
 * reported as still queued). Calls onSettled once per document as it settles; resolves with the
 * statuses in the order of `items`.
 */
export async function waitForDocuments(
  queue: DocumentQueue, redis: Redis, keys: Keys,
  items: ReadonlyArray<{ documentId: string; jobId: string }>,
  options: { timeoutMs: number; pollMs?: number; onSettled: (status: DocumentStatus, index: number) => void; signal?: AbortSignal },
): Promise<DocumentStatus[]> {
  const deadline = Date.now() + options.timeoutMs;
  const results = new Array<DocumentStatus | undefined>(items.length);
  let pending = items.map((item, index) => ({ item, index }));
  while (pending.length > 0) {
    const next: typeof pending = [];
    for (const p of pending) {
      const status = await documentStatus(queue, redis, keys, p.item.documentId, p.item.jobId);
      if (status.state === 'done' || status.state === 'failed') {
        results[p.index] = status;
        options.onSettled(status, p.index);
      } else {
        next.push(p);
      }
    }
    pending = next;
    if (pending.length === 0 || Date.now() > deadline || options.signal?.aborted) break;
    await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
  }
  for (const p of pending) results[p.index] = await documentStatus(queue, redis, keys, p.item.documentId, p.item.jobId);
  return results as DocumentStatus[];
}

/** The queue and job of a document's latest enqueue, when docsift's enqueue made it. */
export async function latestJob(redis: Redis, keys: Keys, documentId: string): Promise<{ queue: string; jobId: string } | null> {
  const raw = await redis.get(keys.latestJob(documentId));
  return raw ? (JSON.parse(raw) as { queue: string; jobId: string }) : null;
}
