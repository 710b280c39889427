import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { getQueue, pipelineVersion, type Config, type QueueConfig } from '../config/index.js';
import { DocsiftError, ERROR_CODES, type ErrorCode } from '../infra/errors.js';
import type { DocumentIdentity, ResultRecord, TierStep } from '../pipeline/index.js';
import { documentIdFor, type DocumentStore, type JobPayload, type Keys } from '../queue/index.js';
import type { ChildJobs } from './childJobs.js';

type When = NonNullable<QueueConfig['escalate']>['when'];

/** Why a tier hands a document on: a kind for metrics, a sentence for people. */
export interface Reason {
  kind: 'invalid_output' | 'too_long' | 'failed_check' | 'ungrounded' | 'low_confidence' | 'document_type';
  text: string;
}

/** The failures a tier may hand on instead of failing: the next, larger model may succeed. */
const HANDED_ON: Partial<Record<ErrorCode, { flag: keyof When; kind: Reason['kind'] }>> = {
  MODEL_OUTPUT_INVALID: { flag: 'invalidOutput', kind: 'invalid_output' },
  DOCUMENT_TOO_LONG: { flag: 'tooLong', kind: 'too_long' },
};

/** Why this tier's result (or failure) goes on to the next tier; empty when it stands. */
export function escalationReasons(when: When, record: ResultRecord | null, failure: DocsiftError | null): Reason[] {
  if (failure) {
    const handed = HANDED_ON[failure.code];
    return handed && when[handed.flag] ? [{ kind: handed.kind, text: `${failure.code}: ${failure.message}` }] : [];
  }
  if (!record || record.fields === null) return [];
  const reasons: Reason[] = [];
  if (record.documentType && when.documentTypes.includes(record.documentType)) reasons.push({ kind: 'document_type', text: `${record.documentType} is always read by the next tier` });
  if (when.failedChecks) {
    for (const c of record.checks) if (c.status === 'failed') reasons.push({ kind: 'failed_check', text: `check ${c.rule} failed: ${c.message}` });
  }
  if (when.ungroundedFields && record.grounding) {
    const missing = Object.entries(record.grounding).filter(([, g]) => g === null).map(([k]) => k);
    if (missing.length) reasons.push({ kind: 'ungrounded', text: `not found in the document: ${missing.join(', ')}` });
  }
  if (when.minConfidence > 0) {
    const low = Object.entries(record.confidence ?? {}).filter(([, v]) => v < when.minConfidence);
    const label = record.classification.confidence;
    if (label !== null && label < when.minConfidence) low.unshift(['label', label]);
    if (low.length) reasons.push({ kind: 'low_confidence', text: `confidence below ${when.minConfidence}: ${low.map(([k, v]) => `${k} ${v}`).join(', ')}` });
  }
  return reasons;
}

/** What the first tier knew, kept in Redis while the next tier works. */
interface Handover {
  next: { queue: string; documentId: string };
  /** This tier's record, when it had one (a doubtful result); null when it failed. */
  record: ResultRecord | null;
  step: TierStep;
}

export interface EscalationDeps {
  config: Config;
  queue: QueueConfig & { escalate: NonNullable<QueueConfig['escalate']> };
  redis: Redis;
  keys: Keys;
  children: ChildJobs;
  store: DocumentStore;
  pipelineVersion: string;
  model: { file: string };
}

/**
 * A queue's next tier, as a BullMQ flow across queues: the document's job adds a job for the
 * same bytes to the next tier's queue as its child, waits for it, and then writes the final record
 * under its own document id (the one its producer knows): the next tier's fields, with the path.
 */
export class Escalation {
  private readonly nextVersion: string;

  constructor(private readonly deps: EscalationDeps) {
    this.nextVersion = pipelineVersion(deps.config, getQueue(deps.config, deps.queue.escalate.to));
  }

  get to(): string {
    return this.deps.queue.escalate.to;
  }

  /** A handover made by an earlier run of this job: the document is waiting for the next tier. */
  async pending(documentId: string): Promise<Handover | null> {
    const raw = await this.deps.redis.get(this.deps.keys.escalation(documentId));
    return raw ? (JSON.parse(raw) as Handover) : null;
  }

  /** Hands the document on; returns the final record at once when the next tier already has one, else throws WaitingChildrenError. */
  async handOn(job: Job, token: string | undefined, input: { bytes: Buffer; payload: JobPayload; identity: DocumentIdentity; record: ResultRecord | null; failure: DocsiftError | null; reasons: Reason[]; startedAt: number }): Promise<ResultRecord> {
    const { identity, payload, record, failure } = input;
    const next = { queue: this.to, documentId: documentIdFor(identity.sha256, this.nextVersion, payload.documentType) };
    const reasons = input.reasons.map((r) => r.text);
    const step: TierStep = record
      ? { ...stepOf(record), reasons }
      : { queue: this.deps.queue.name, model: this.deps.model.file, label: null, reasons, totalMs: Math.round(performance.now() - input.startedAt), tokens: { prompt: 0, reused: 0, generated: 0, forced: 0 }, code: failure?.code ?? 'INTERNAL' };
    const handover: Handover = { next, record, step };
    const seconds = this.deps.queue.retention.recordSeconds;
    const key = this.deps.keys.escalation(identity.documentId);
    await (seconds > 0 ? this.deps.redis.set(key, JSON.stringify(handover), 'EX', seconds) : this.deps.redis.set(key, JSON.stringify(handover)));
    await this.deps.children.add(job, this.to, {
      documentId: next.documentId, sha256: identity.sha256, size: input.bytes.length, filename: identity.filename, source: identity.source, metadata: identity.metadata,
      detectedType: payload.detectedType,
      escalation: { from: identity.documentId, queue: this.deps.queue.name, reasons },
      ...(payload.documentType ? { documentType: payload.documentType } : {}),
      store: (holder) => this.deps.store.put(identity.sha256, input.bytes, holder),
    });
    return this.finish(job, token, handover, identity);
  }

  /** The final record from the next tier's outcome; throws while it works. */
  async finish(job: Job, token: string | undefined, handover: Handover, identity: DocumentIdentity): Promise<ResultRecord> {
    const [outcome] = await this.deps.children.outcomes(job, token, [handover.next]);
    const own = {
      documentId: identity.documentId, sha256: identity.sha256, filename: identity.filename, source: identity.source, metadata: identity.metadata,
      queue: this.deps.queue.name, pipelineVersion: this.deps.pipelineVersion, jobId: identity.jobId, attempts: identity.attempt,
      completedAt: new Date().toISOString(), review: null, ...(identity.parent ? { parent: identity.parent } : {}),
    };
    if (outcome!.status === 'done') {
      const next = outcome!.record;
      return { ...next, ...own, tiers: [handover.step, ...(next.tiers ?? [stepOf(next)])] };
    }
    const { code, message } = outcome!;
    const failedStep: TierStep = { queue: this.to, model: '', label: null, reasons: [], totalMs: 0, tokens: { prompt: 0, reused: 0, generated: 0, forced: 0 }, code };
    // The next tier failed: this tier's own (doubtful) result stands, marked; without one, the document fails with the next tier's code.
    if (handover.record) return { ...handover.record, ...own, warnings: [...handover.record.warnings, `ESCALATION_FAILED: ${code}: ${message}`], tiers: [handover.step, failedStep] };
    throw new DocsiftError(code in ERROR_CODES ? (code as ErrorCode) : 'INTERNAL', `the next tier (${this.to}) failed too: ${message}`);
  }

  async forget(documentId: string): Promise<void> {
    await this.deps.redis.del(this.deps.keys.escalation(documentId));
  }
}

function stepOf(record: ResultRecord): TierStep {
  return { queue: record.queue, model: record.model.file, label: record.classification.label, reasons: [], totalMs: record.timings.totalMs, tokens: record.tokens };
}
