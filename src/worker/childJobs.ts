import { DelayedError, WaitingChildrenError, type Job } from 'bullmq';
import { getJson, type RedisClient } from '../queue/connection.js';
import type { Config, QueueConfig } from '../config/index.js';
import { parseFailure } from '../infra/errors.js';
import type { FailureRecord, ResultRecord } from '../pipeline/index.js';
import { addDocumentJob, type DocumentQueue, type DocumentStore, type Keys, type NewDocumentJob } from '../queue/index.js';

/** How often a parent looks again for a child that another producer's job is processing (BullMQ cannot make it wait on that job). */
const POLL_MS = 10_000;

/** What the worker's flows (a mail's parts, the next tier, a challenger) share: one per worker. */
export interface FlowDeps {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  /** Adds child jobs to the worker's queue and its next tiers' and reads their outcomes. */
  children: ChildJobs;
  store: DocumentStore;
  /** This queue's pipeline version and model, for the records a flow writes itself. */
  pipelineVersion: string;
  model: { file: string; sha256: string; lora: string[] };
  node: string;
}

/** How a child document ended, read from its records. */
export type ChildOutcome =
  | { status: 'done'; record: ResultRecord }
  | { status: 'failed'; code: string; message: string };

/**
 * Documents a job hands on and waits for, as a BullMQ flow: an e-mail's parts, a document
 * escalated to a larger model's queue. A child is added as a child job of the parent's unless
 * its document already has a result (nothing to do) or a job (another producer's: the parent
 * polls for it). When BullMQ runs the parent again, each child's outcome is read back by its
 * document id, which derives from its bytes: the same parent makes the same children.
 */
export class ChildJobs {
  constructor(private readonly redis: RedisClient, private readonly keys: Keys, private readonly queues: ReadonlyMap<string, { queue: DocumentQueue; config: QueueConfig }>) {}

  async add(parent: Job, queueName: string, child: Omit<NewDocumentJob, 'flowParent'>): Promise<void> {
    const target = this.queues.get(queueName)!;
    if (await this.redis.exists(this.keys.result(child.documentId))) return;
    if (await target.queue.getJob(child.documentId)) return;
    await addDocumentJob(target.queue, this.redis, this.keys, target.config, { ...child, flowParent: { id: parent.id!, queue: parent.queueQualifiedName } });
  }

  /**
   * Every child's outcome, in order. Throws WaitingChildrenError while the parent's own child
   * jobs are unfinished (BullMQ runs the parent again when they are), and DelayedError while a
   * child owned by another producer is.
   */
  async outcomes(parent: Job, token: string | undefined, children: Array<{ documentId: string; queue: string }>): Promise<ChildOutcome[]> {
    if (token && (await parent.moveToWaitingChildren(token))) throw new WaitingChildrenError();
    const outcomes = await Promise.all(children.map((c) => this.outcome(c)));
    if (outcomes.includes(null)) {
      if (token) await parent.moveToDelayed(Date.now() + POLL_MS, token);
      throw new DelayedError();
    }
    return outcomes as ChildOutcome[];
  }

  /** null while the child is still in work. */
  private async outcome(child: { documentId: string; queue: string }): Promise<ChildOutcome | null> {
    const [record, failed] = await Promise.all([getJson<ResultRecord>(this.redis, this.keys.result(child.documentId)), getJson<FailureRecord>(this.redis, this.keys.failure(child.documentId))]);
    if (record) return { status: 'done', record };
    if (failed && !failed.willRetry) return { status: 'failed', code: failed.code, message: failed.message };
    const job = await this.queues.get(child.queue)?.queue.getJob(child.documentId);
    if (job) {
      // Failed for good before its failure record could name it: its job says why.
      if (await job.isFailed()) return { status: 'failed', ...parseFailure(job.failedReason) };
      return null;
    }
    return { status: 'failed', code: 'DOCUMENT_MISSING', message: 'the document has neither a result nor a job (its records expired, or its job was removed)' };
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.queue.close()));
  }
}
