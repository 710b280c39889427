import type { Job } from 'bullmq';
import { getJson, setFor } from '../queue/connection.js';
import { getQueue, pipelineVersion, type QueueConfig } from '../config/index.js';
import type { DocumentIdentity, ResultRecord } from '../pipeline/index.js';
import { documentIdFor, type JobPayload } from '../queue/index.js';
import type { FlowDeps } from './childJobs.js';

/** What the first model answered, kept in Redis while the challenger answers. */
interface Asked {
  next: { queue: string; documentId: string };
  record: ResultRecord;
}

export interface ChallengeDeps extends FlowDeps {
  queue: QueueConfig & { challenge: NonNullable<QueueConfig['challenge']> };
}

/**
 * A second model answers the same fields (the challenger queue's workers), as a BullMQ child of
 * the document's job; the two answers are compared field by field. With onDisagreement "null"
 * the disagreeing fields become null (the record says which, and review holds it when on); with
 * "escalate" the caller sends those fields to the next tier.
 */
export class Challenge {
  private readonly version: string;

  constructor(private readonly deps: ChallengeDeps) {
    this.version = pipelineVersion(deps.config, getQueue(deps.config, deps.queue.challenge.queue));
  }

  get onDisagreement(): 'null' | 'escalate' {
    return this.deps.queue.challenge.onDisagreement;
  }

  pending(documentId: string): Promise<Asked | null> {
    return getJson(this.deps.redis, this.deps.keys.challenge(documentId));
  }

  /** Asks the challenger; returns the record with its verdict, or throws WaitingChildrenError while it answers. */
  async ask(job: Job, token: string | undefined, input: { bytes: Buffer; payload: JobPayload; identity: DocumentIdentity; record: ResultRecord }): Promise<ResultRecord> {
    const { identity, record } = input;
    const queue = this.deps.queue.challenge.queue;
    const asked: Asked = { next: { queue, documentId: documentIdFor(identity.sha256, this.version, record.documentType!) }, record };
    await setFor(this.deps.redis, this.deps.keys.challenge(identity.documentId), JSON.stringify(asked), this.deps.queue.retention.recordSeconds);
    await this.deps.children.add(job, queue, {
      documentId: asked.next.documentId, sha256: identity.sha256, size: input.bytes.length, filename: identity.filename, source: identity.source, metadata: identity.metadata,
      detectedType: input.payload.detectedType, documentType: record.documentType!,
      challenge: { from: identity.documentId, queue: this.deps.queue.name },
      store: (holder) => this.deps.store.put(identity.sha256, input.bytes, holder),
    });
    return this.verdict(job, token, asked);
  }

  /** The first record with the challenger's verdict. A challenger that failed leaves the record as it was, with a warning. */
  async verdict(job: Job, token: string | undefined, asked: Asked): Promise<ResultRecord> {
    const [outcome] = await this.deps.children.outcomes(job, token, [asked.next]);
    const { record } = asked;
    if (outcome!.status === 'failed') return { ...record, warnings: [...record.warnings, `CHALLENGE_FAILED: ${outcome!.code}: ${outcome!.message}`] };
    const other = outcome!.record;
    const disagreed = disagreements(record.fields ?? {}, other.fields ?? {});
    const challenge = { queue: other.queue, model: other.model.file, ...(other.node ? { node: other.node } : {}), disagreed, tokens: other.tokens, modelMs: other.timings.classifyMs + other.timings.extractMs };
    if (disagreed.length === 0 || this.onDisagreement === 'escalate') return { ...record, challenge };
    const doubted = (path: string) => disagreed.includes(path.split('.')[0]!);
    const drop = <T>(map: Record<string, T> | null) => (map === null ? null : Object.fromEntries(Object.entries(map).filter(([k]) => !doubted(k))));
    return {
      ...record,
      fields: Object.fromEntries(Object.entries(record.fields ?? {}).map(([k, v]) => [k, disagreed.includes(k) ? null : v])),
      confidence: drop(record.confidence),
      grounding: drop(record.grounding),
      challenge,
      warnings: [...record.warnings, `CHALLENGE_DISAGREED: the challenger (${other.model.file}) answered ${disagreed.join(', ')} differently; set to null`],
    };
  }

  async forget(documentId: string): Promise<void> {
    await this.deps.redis.del(this.deps.keys.challenge(documentId));
  }
}

/**
 * Top-level fields whose values differ, compared as people read them: strings without case and
 * runs of spaces, numbers to the cent, arrays and objects item by item the same way. A field one
 * answer left null and the other filled is a disagreement.
 */
export function disagreements(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => JSON.stringify(canonical(a[k] ?? null)) !== JSON.stringify(canonical(b[k] ?? null))).sort();
}

function canonical(value: unknown): unknown {
  if (typeof value === 'string') return value.normalize('NFKC').replace(/\s+/g, ' ').trim().toLowerCase();
  if (typeof value === 'number') return Math.round(value * 100) / 100;
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k] ?? null)]));
  return value ?? null;
}
