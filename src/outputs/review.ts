import { createHash } from 'node:crypto';
import { getJson, type RedisClient } from '../queue/connection.js';
import { ruleFields, type Config, type QueueConfig, type Rule } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { makeValidator } from '../model/grammarSchema.js';
import type { ResultRecord } from '../pipeline/index.js';
import { checkRules } from '../pipeline/rules.js';
import type { Keys } from '../queue/keys.js';
import type { OutputContext } from './output.js';
import { finalOutputs, type QueueOutputs } from './queueOutputs.js';

/** A reason to doubt a record: a kind for metrics, a sentence for people, the top-level fields in doubt (none: the whole document). */
export interface Doubt {
  kind: 'failed_check' | 'ungrounded' | 'low_confidence';
  text: string;
  fields?: string[];
}

/**
 * What a record's rules, grounding and confidence give to doubt, as review and escalation both
 * ask it (each with its own switches). rules: the document type's, in the order of record.checks.
 */
export function doubts(record: ResultRecord, on: { failedChecks: boolean; ungroundedFields: boolean; minConfidence: number }, rules: readonly Rule[] = []): Doubt[] {
  const found: Doubt[] = [];
  const top = (paths: string[]) => [...new Set(paths.map((p) => p.split('.')[0]!))];
  if (on.failedChecks) {
    record.checks.forEach((c, i) => {
      if (c.status === 'failed') found.push({ kind: 'failed_check', text: `check ${c.rule} failed: ${c.message}`, ...(rules[i] ? { fields: ruleFields(rules[i]) } : {}) });
    });
  }
  if (on.ungroundedFields && record.grounding) {
    const missing = Object.entries(record.grounding).filter(([, g]) => g === null).map(([k]) => k);
    if (missing.length) found.push({ kind: 'ungrounded', text: `not found in the document: ${missing.join(', ')}`, fields: top(missing) });
  }
  if (on.minConfidence > 0) {
    const low = Object.entries(record.confidence ?? {}).filter(([, v]) => v < on.minConfidence);
    const label = record.classification.confidence;
    const lowLabel = label !== null && label < on.minConfidence;
    if (lowLabel) low.unshift(['label', label]);
    // A doubtful label puts the whole reading in doubt.
    if (low.length) found.push({ kind: 'low_confidence', text: `confidence below ${on.minConfidence}: ${low.map(([k, v]) => `${k} ${v}`).join(', ')}`, ...(lowLabel ? {} : { fields: top(low.map(([k]) => k)) }) });
  }
  return found;
}

/** Why a result should wait for a person, per the queue's review settings; empty: final at once. */
export function reviewReasons(queue: QueueConfig, record: ResultRecord): string[] {
  const { review } = queue;
  if (!review.enabled || record.fields === null) return [];
  const reasons = doubts(record, review).map((d) => d.text);
  if (record.challenge?.disagreed.length) reasons.push(`the challenger model (${record.challenge.model}) disagreed on: ${record.challenge.disagreed.join(', ')}`);
  const ocr = record.text.ocr;
  if (ocr && ocr.meanConfidence < queue.ocr.minConfidence) reasons.push(`low OCR confidence on page(s) ${ocr.pages.join(', ')}: ${ocr.meanConfidence} (< ocr.minConfidence ${queue.ocr.minConfidence})`);
  if (review.sampleRate > 0) {
    // Deterministic by document id: the same document is sampled on every run and every node.
    const x = createHash('sha256').update(record.documentId).digest().readUInt32BE(0) / 0x1_0000_0000;
    if (x < review.sampleRate) reasons.push(`sampled for quality control (${review.sampleRate * 100}% of documents)`);
  }
  return reasons;
}

/**
 * Holds a record for review: lists it as pending and keeps its callback aside (not in the record:
 * a URL's token is not for every reader of results) until a person decides. The caller writes
 * the record to the store of record alone.
 */
export async function holdForReview(redis: RedisClient, keys: Keys, record: ResultRecord, context: OutputContext): Promise<void> {
  // Two commands, not a transaction (on a Cluster the keys are in different slots); the callback
  // first, so a document listed as pending always has it.
  if (context.callbackUrl) await redis.set(keys.reviewCallback(record.documentId), context.callbackUrl);
  await redis.zadd(keys.reviewPending, Date.now(), record.documentId);
}

/**
 * Results held for review, and what a reviewer does with them. Accepting or correcting records
 * who and when, and writes the final record to every output of its queue.
 */
export class ReviewDesk {
  constructor(
    private readonly config: Config,
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly outputsFor: (queue: QueueConfig) => QueueOutputs,
  ) {}

  async list(limit = 100): Promise<ResultRecord[]> {
    const ids = await this.redis.zrange(this.keys.reviewPending, '0', String(limit - 1));
    const records = await Promise.all(ids.map((id) => this.show(id).catch(() => null)));
    return records.filter((r): r is ResultRecord => r !== null);
  }

  async show(documentId: string): Promise<ResultRecord> {
    const record = await getJson<ResultRecord>(this.redis, this.keys.result(documentId));
    if (!record) throw new DocsiftError('NOT_FOUND', `no result for document ${documentId}`);
    return record;
  }

  private async pending(documentId: string): Promise<ResultRecord> {
    const record = await this.show(documentId);
    if (record.review?.status !== 'pending') throw new DocsiftError('NOT_PENDING_REVIEW', `document ${documentId} is not waiting for review (${record.review?.status ?? 'final'})`);
    return record;
  }

  async accept(documentId: string, by: string): Promise<ResultRecord> {
    const record = await this.pending(documentId);
    record.review = { status: 'accepted', reasons: record.review!.reasons, by, at: new Date().toISOString() };
    return this.finalise(record);
  }

  /** Replaces the given fields; the result must still match the type's schema. */
  async correct(documentId: string, changes: Record<string, unknown>, by: string): Promise<ResultRecord> {
    const record = await this.pending(documentId);
    const type = record.documentType ? this.config.prompts.types.get(record.documentType) : undefined;
    if (!type || !record.fields) throw new DocsiftError('INVALID_CORRECTION', `document ${documentId} has no fields to correct`);
    const unknown = Object.keys(changes).filter((k) => !(k in record.fields!));
    if (unknown.length) throw new DocsiftError('INVALID_CORRECTION', `not fields of ${type.name}: ${unknown.join(', ')}`);
    const fields = { ...record.fields, ...changes };
    const checked = makeValidator(type.schema)(fields);
    if (!checked.ok) throw new DocsiftError('INVALID_CORRECTION', `the corrected fields do not match prompts/${type.name}/schema.json: ${checked.error}`);
    record.review = {
      status: 'corrected', reasons: record.review!.reasons, by, at: new Date().toISOString(),
      changes: Object.entries(changes).map(([field, to]) => ({ field, from: record.fields![field], to })),
    };
    record.fields = checked.value;
    record.checks = checkRules(type.rules, record.fields);
    return this.finalise(record);
  }

  /**
   * Makes a decision final, once: taking the document off the pending set is the claim, and of
   * two people deciding at the same moment only one takes it (the other is told it is not
   * waiting). The record then goes to every output with the callback it was enqueued with. If an
   * output fails, the document goes back on the pending set, so the decision can be made again.
   */
  private async finalise(record: ResultRecord): Promise<ResultRecord> {
    const queue = this.config.queues.get(record.queue);
    if (!queue) throw new DocsiftError('QUEUE_NOT_FOUND', `the record's queue ${record.queue} is not configured here`);
    const claimedAt = await this.redis.zscore(this.keys.reviewPending, record.documentId);
    if (claimedAt === null || (await this.redis.zrem(this.keys.reviewPending, record.documentId)) === 0) {
      throw new DocsiftError('NOT_PENDING_REVIEW', `document ${record.documentId} is not waiting for review (another decision was just made)`);
    }
    try {
      const callbackUrl = await this.redis.get(this.keys.reviewCallback(record.documentId));
      for (const output of finalOutputs(this.outputsFor(queue))) await output.write(record, callbackUrl ? { callbackUrl } : {});
    } catch (err) {
      await this.redis.zadd(this.keys.reviewPending, claimedAt, record.documentId);
      throw err;
    }
    // Separate commands (different slots on a Cluster); a crash in between leaves at most a stale callback.
    await this.redis.zadd(this.keys.reviewDone, Date.now(), record.documentId);
    await this.redis.zremrangebyrank(this.keys.reviewDone, 0, -this.config.env.DOCSIFT_REVIEW_HISTORY_MAX - 1);
    await this.redis.del(this.keys.reviewCallback(record.documentId));
    return record;
  }
}
