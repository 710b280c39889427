import { QueueEvents } from 'bullmq';
import { z } from 'zod';
import { blockingCopy, getJson, type RedisClient } from '../queue/connection.js';
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
export async function documentStatus(queue: DocumentQueue, redis: RedisClient, keys: Keys, documentId: string, jobId = documentId): Promise<DocumentStatus> {
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
        // An e-mail waiting for its parts (a BullMQ flow's parent) is "waiting" at stage "parts".
        stage: state === 'active' ? progress.stage ?? null : state === 'waiting-children' ? 'parts' : null,
        progress: state === 'active' ? progress.percent ?? 0 : 0,
      };
    }
  }
  const record = await readResult(redis, keys, documentId);
  if (record) return { state: 'done', documentId, record };
  const f = await getJson<FailureRecord>(redis, keys.failure(documentId));
  if (f && !f.willRetry) return { state: 'failed', documentId, code: f.code, message: f.message, attempts: f.attempts };
  return { state: 'unknown', documentId };
}

export function readResult(redis: RedisClient, keys: Keys, documentId: string): Promise<ResultRecord | null> {
  return getJson<ResultRecord>(redis, keys.result(documentId));
}

/**
 * Waits until every document is done or failed, or the timeout passes (then the rest are
 * reported as still queued). Calls onSettled once per document as it settles; resolves with the
 * statuses in the order of `items`.
 *
 * Event-driven: it follows the queue's BullMQ event stream from before its first look and checks a
 * document again only when its job completes or fails, so waiting on 10,000 documents costs Redis
 * what the workers' events cost, not a poll of every document. A slow sweep (at most
 * `sweepBatch` documents every `pollMs`) is the safety net for anything the stream no longer
 * holds (it is trimmed) or a document settled without an event of its job.
 */
export async function waitForDocuments(
  queue: DocumentQueue, redis: RedisClient, keys: Keys,
  items: ReadonlyArray<{ documentId: string; jobId: string }>,
  options: { timeoutMs: number; pollMs?: number; sweepBatch?: number; onSettled: (status: DocumentStatus, index: number) => void; signal?: AbortSignal },
): Promise<DocumentStatus[]> {
  const deadline = Date.now() + options.timeoutMs;
  const pollMs = options.pollMs ?? 250;
  const sweepBatch = options.sweepBatch ?? 50;
  const results = new Array<DocumentStatus | undefined>(items.length);
  const pending = new Map<number, { documentId: string; jobId: string }>(items.map((item, index) => [index, item]));
  const byJob = new Map<string, number[]>();
  items.forEach((item, index) => byJob.set(item.jobId, [...(byJob.get(item.jobId) ?? []), index]));

  const check = async (index: number): Promise<void> => {
    const item = pending.get(index);
    if (!item) return;
    const status = await documentStatus(queue, redis, keys, item.documentId, item.jobId);
    if ((status.state === 'done' || status.state === 'failed') && pending.delete(index)) {
      results[index] = status;
      options.onSettled(status, index);
    }
  };

  // Events after this id are read, so nothing that happens during the first look is missed.
  const streamKey = `${queue.opts.prefix ?? 'bull'}:${queue.name}:events`;
  const [last] = (await redis.xrevrange(streamKey, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
  const connection = blockingCopy(redis);
  const events = new QueueEvents(queue.name, { connection, prefix: queue.opts.prefix, lastEventId: last?.[0] ?? '0', blockingTimeout: Math.max(100, Math.min(pollMs, 5000)) });
  events.on('error', () => undefined); // reconnects on its own; the sweep covers the gap
  const touched = new Set<number>();
  let wake: (() => void) | undefined;
  const onJobEvent = ({ jobId }: { jobId: string }) => {
    for (const index of byJob.get(jobId) ?? []) if (pending.has(index)) touched.add(index);
    wake?.();
  };
  events.on('completed', onJobEvent);
  events.on('failed', onJobEvent);
  try {
    for (const index of [...pending.keys()]) await check(index);
    let cursor = 0;
    let lastSweep = Date.now();
    while (pending.size > 0 && Date.now() <= deadline && !options.signal?.aborted) {
      if (touched.size === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, Math.min(pollMs, deadline - Date.now())));
          wake = () => { clearTimeout(timer); resolve(); };
        });
        wake = undefined;
      }
      const now = [...touched];
      touched.clear();
      for (const index of now) await check(index);
      if (Date.now() - lastSweep >= pollMs) {
        lastSweep = Date.now();
        const open = [...pending.keys()];
        const from = open.length ? cursor % open.length : 0;
        for (const index of open.slice(from, from + sweepBatch)) await check(index);
        cursor += sweepBatch;
      }
    }
  } finally {
    await events.close().catch(() => undefined);
    connection.disconnect();
  }
  for (const [index, item] of pending) results[index] = await documentStatus(queue, redis, keys, item.documentId, item.jobId);
  return results as DocumentStatus[];
}

/** The queue and job of a document's latest enqueue, when docsift's enqueue made it. */
export function latestJob(redis: RedisClient, keys: Keys, documentId: string): Promise<{ queue: string; jobId: string } | null> {
  return getJson(redis, keys.latestJob(documentId));
}

/**
 * Finds a document: in the queue that has its latest job (a forced re-run has a job id of its
 * own), else in every queue under the document id. The API and the Redis client both look here.
 */
export async function findDocument(queues: ReadonlyMap<string, DocumentQueue>, redis: RedisClient, keys: Keys, documentId: string): Promise<{ status: DocumentStatus; queue: string | null }> {
  const latest = await latestJob(redis, keys, documentId);
  const candidates = latest && queues.has(latest.queue)
    ? [[latest.queue, latest.jobId] as const]
    : [...queues.keys()].map((name) => [name, documentId] as const);
  for (const [name, jobId] of candidates) {
    const status = await documentStatus(queues.get(name)!, redis, keys, documentId, jobId);
    if (status.state !== 'unknown') return { status, queue: status.state === 'done' ? status.record.queue : name };
  }
  return { status: { state: 'unknown', documentId }, queue: null };
}

/** What callers outside see of a known document's status (the API's body, the client's DocumentState). */
export const PublicState = z.object({
  documentId: z.string(),
  state: z.enum(['waiting', 'active', 'delayed', 'done', 'failed']),
  stage: z.string().nullable().describe('text, classify, extract or outputs while active'),
  progress: z.number().describe('percent done: 0 waiting, 10 text, 30 classify, 60 extract, 90 outputs, 100 done or failed'),
  attempts: z.number(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type PublicState = z.infer<typeof PublicState>;

export function publicState(status: Exclude<DocumentStatus, { state: 'unknown' }>): PublicState {
  return {
    documentId: status.documentId,
    state: status.state,
    stage: 'stage' in status ? status.stage : null,
    progress: 'progress' in status ? status.progress : 100,
    attempts: status.state === 'done' ? status.record.attempts : status.attempts,
    error: status.state === 'failed' ? { code: status.code, message: status.message } : null,
  };
}

