import type { Job } from 'bullmq';
import { getJson, setFor } from '../queue/connection.js';
import { getQueue, pipelineVersion, type QueueConfig, type Rule } from '../config/index.js';
import { doubts, type Doubt } from '../outputs/index.js';
import { DocsiftError, ERROR_CODES, type ErrorCode } from '../infra/errors.js';
import { checkRules, type DocumentIdentity, type ResultRecord, type TierStep } from '../pipeline/index.js';
import { documentIdFor, type JobPayload } from '../queue/index.js';
import type { FlowDeps } from './childJobs.js';

type When = NonNullable<QueueConfig['escalate']>['when'];

/** Why a tier hands a document on: a kind for metrics, a sentence for people. */
export interface Reason extends Omit<Doubt, 'kind'> {
  kind: Doubt['kind'] | 'invalid_output' | 'too_long' | 'document_type' | 'disagreement';
}

/** The failures a tier may hand on instead of failing: the next, larger model may succeed. */
const HANDED_ON: Partial<Record<ErrorCode, { flag: keyof When; kind: Reason['kind'] }>> = {
  MODEL_OUTPUT_INVALID: { flag: 'invalidOutput', kind: 'invalid_output' },
  DOCUMENT_TOO_LONG: { flag: 'tooLong', kind: 'too_long' },
};

/** Why this tier's result (or failure) goes on to the next tier; empty when it stands. rules: the document type's, in the order of record.checks. */
export function escalationReasons(when: When, record: ResultRecord | null, failure: DocsiftError | null, rules: readonly Rule[] = []): Reason[] {
  if (failure) {
    const handed = HANDED_ON[failure.code];
    return handed && when[handed.flag] ? [{ kind: handed.kind, text: `${failure.code}: ${failure.message}` }] : [];
  }
  if (!record || record.fields === null) return [];
  const reasons: Reason[] = [];
  if (record.documentType && when.documentTypes.includes(record.documentType)) reasons.push({ kind: 'document_type', text: `${record.documentType} is always read by the next tier` });
  reasons.push(...doubts(record, when, rules));
  return reasons;
}

/** What the first tier knew, kept in Redis while the next tier works. */
interface Handover {
  next: { queue: string; documentId: string };
  /** The fields the next tier re-extracts alone; null: the whole document. */
  fields: string[] | null;
  /** This tier's record, when it had one (a doubtful result); null when it failed. */
  record: ResultRecord | null;
  step: TierStep;
}

export interface EscalationDeps extends FlowDeps {
  queue: QueueConfig & { escalate: NonNullable<QueueConfig['escalate']> };
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
  pending(documentId: string): Promise<Handover | null> {
    return getJson(this.deps.redis, this.deps.keys.escalation(documentId));
  }

  /** Hands the document on; returns the final record at once when the next tier already has one, else throws WaitingChildrenError. */
  async handOn(job: Job, token: string | undefined, input: { bytes: Buffer; payload: JobPayload; identity: DocumentIdentity; record: ResultRecord | null; failure: DocsiftError | null; reasons: Reason[]; startedAt: number }): Promise<ResultRecord> {
    const { identity, payload, record, failure } = input;
    // Field by field only when every reason names its fields; the next tier then reads this tier's type.
    const fields = this.deps.queue.escalate.fields === 'doubtful' && record?.documentType && input.reasons.every((r) => r.fields)
      ? [...new Set(input.reasons.flatMap((r) => r.fields!))].sort()
      : null;
    const documentType = fields ? record!.documentType! : payload.documentType;
    const next = { queue: this.to, documentId: documentIdFor(identity.sha256, this.nextVersion, documentType, fields ?? undefined) };
    const reasons = input.reasons.map((r) => r.text);
    const step: TierStep = record
      ? { ...stepOf(record), node: this.deps.node, reasons }
      // A tier that failed has no record of its times: its whole run counts as model time.
      : { queue: this.deps.queue.name, model: this.deps.model.file, node: this.deps.node, label: null, reasons, totalMs: Math.round(performance.now() - input.startedAt), modelMs: Math.round(performance.now() - input.startedAt), tokens: (failure?.details?.tokens as TierStep['tokens'] | undefined) ?? { prompt: 0, reused: 0, generated: 0, forced: 0 }, code: failure?.code ?? 'INTERNAL' };
    const handover: Handover = { next, fields, record, step };
    await setFor(this.deps.redis, this.deps.keys.escalation(identity.documentId), JSON.stringify(handover), this.deps.queue.retention.recordSeconds);
    await this.deps.children.add(job, this.to, {
      documentId: next.documentId, sha256: identity.sha256, size: input.bytes.length, filename: identity.filename, source: identity.source, metadata: identity.metadata,
      detectedType: payload.detectedType, documentType,
      escalation: { from: identity.documentId, queue: this.deps.queue.name, reasons, ...(fields ? { fields } : {}) },
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
      completedAt: new Date().toISOString(), review: null, node: this.deps.node, ...(identity.parent ? { parent: identity.parent } : {}),
    };
    if (outcome!.status === 'done') {
      // The next tier's record was written for this document (for); the final one is this document's own.
      const { for: _for, ...next } = outcome!.record;
      const tiers = [handover.step, ...(next.tiers ?? [{ ...stepOf(next), ...(handover.fields ? { fields: handover.fields } : {}) }])];
      if (handover.fields && handover.record) return { ...this.merge(handover.record, next, handover.fields), ...own, tiers };
      return { ...next, ...own, tiers };
    }
    const { code, message } = outcome!;
    const failedStep: TierStep = { queue: this.to, model: '', label: null, reasons: [], totalMs: 0, modelMs: 0, tokens: { prompt: 0, reused: 0, generated: 0, forced: 0 }, code };
    // The next tier failed: this tier's own (doubtful) result stands, marked; without one, the document fails with the next tier's code.
    if (handover.record) return { ...handover.record, ...own, warnings: [...handover.record.warnings, `ESCALATION_FAILED: ${code}: ${message}`], tiers: [handover.step, failedStep] };
    throw new DocsiftError(code in ERROR_CODES ? (code as ErrorCode) : 'INTERNAL', `the next tier (${this.to}) failed too: ${message}`);
  }

  /**
   * This tier's record with the next tier's values for the doubted fields: their values,
   * confidence, grounding and pages replaced, and the type's rules run again on the whole.
   */
  private merge(first: ResultRecord, next: ResultRecord, fields: string[]): ResultRecord {
    const ours = (path: string) => !fields.includes(path.split('.')[0]!);
    const pick = <T>(a: Record<string, T> | null, b: Record<string, T> | null): Record<string, T> | null =>
      a === null && b === null ? null : { ...Object.fromEntries(Object.entries(a ?? {}).filter(([k]) => ours(k))), ...Object.fromEntries(Object.entries(b ?? {}).filter(([k]) => !ours(k))) };
    const merged = pick(first.fields, next.fields)!;
    const rules = this.deps.config.prompts.types.get(first.documentType!)?.rules ?? [];
    return {
      ...first,
      fields: merged,
      confidence: pick(first.confidence, next.confidence),
      grounding: pick(first.grounding, next.grounding),
      fieldPages: pick(first.fieldPages, next.fieldPages),
      checks: checkRules(rules, merged),
      warnings: [...first.warnings, ...next.warnings],
    };
  }

  async forget(documentId: string): Promise<void> {
    await this.deps.redis.del(this.deps.keys.escalation(documentId));
  }
}

function stepOf(record: ResultRecord): TierStep {
  return {
    queue: record.queue, model: record.model.file, ...(record.node ? { node: record.node } : {}), label: record.classification.label, reasons: [],
    totalMs: record.timings.totalMs, modelMs: record.timings.classifyMs + record.timings.extractMs, tokens: record.tokens,
  };
}
