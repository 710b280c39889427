import { createHash } from 'node:crypto';
import type { Job } from 'bullmq';
import { getJson, setFor } from '../queue/connection.js';
import { promptVersions, type QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { makeMailRecord, type DocumentIdentity, type MailChild, type ResultRecord } from '../pipeline/index.js';
import { documentIdFor, type JobPayload } from '../queue/index.js';
import { bodyDocument, detectFormat, isMail, textLimits, type MailHeaders, type TextExtractor } from '../text/index.js';
import type { FlowDeps } from './childJobs.js';

/** What a mail split into, kept in Redis between the mail job's first run and its last. */
interface MailPlan {
  headers: MailHeaders;
  text: { format: string; pages: number; chars: number; warnings: string[] };
  textMs: number;
  /** Each part as planned: skipped ones already final, the others to be read back by document id. */
  children: MailChild[];
}

export interface MailJobDeps extends FlowDeps {
  queue: QueueConfig;
  extractor: TextExtractor;
}

/**
 * An e-mail's job, as a BullMQ flow: the first run reads the mail and adds a job for its body
 * and for each attachment of a supported type, each a child of the mail's job; the mail's job
 * then waits (waiting-children) and runs again when they are all done or failed, to read their
 * outcomes back by document id and make its own record. The same mail gives the same parts,
 * with the same content-derived ids: enqueued twice, it makes no second job for any of them.
 */
export class MailJob {
  private readonly prompts: Record<string, string>;

  constructor(private readonly deps: MailJobDeps) {
    this.prompts = promptVersions(deps.config, deps.queue);
  }

  /** The mail's record, or WaitingChildrenError / DelayedError while its parts are processed. */
  async run(job: Job<JobPayload, ResultRecord>, token: string | undefined, bytes: Buffer, payload: JobPayload, identity: DocumentIdentity, startedAt: number, log: Logger): Promise<ResultRecord> {
    const key = this.deps.keys.mailPlan(identity.documentId);
    let plan = await getJson<MailPlan>(this.deps.redis, key);
    if (!plan) {
      plan = await this.split(job, bytes, payload, identity);
      await setFor(this.deps.redis, key, JSON.stringify(plan), this.deps.queue.retention.recordSeconds);
      log.info({ parts: plan.children.length, skipped: plan.children.filter((c) => c.status === 'skipped').length }, 'mail split into its parts');
    }
    const read = plan.children.filter((c) => c.documentId !== null);
    const outcomes = await this.deps.children.outcomes(job, token, read.map((c) => ({ documentId: c.documentId!, queue: this.deps.queue.name })));
    const children = plan.children.map((c) => {
      if (c.documentId === null) return c;
      const outcome = outcomes[read.indexOf(c)]!;
      return outcome.status === 'done'
        ? { ...c, status: 'done' as const, label: outcome.record.classification.label, documentType: outcome.record.documentType }
        : { ...c, status: 'failed' as const, code: outcome.code, message: outcome.message };
    });
    return makeMailRecord({
      identity, queue: this.deps.queue.name, pipelineVersion: this.deps.pipelineVersion, prompts: this.prompts, model: this.deps.model,
      text: plan.text, headers: plan.headers, children, warnings: [],
      textMs: plan.textMs, totalMs: Math.round(performance.now() - startedAt),
    });
  }

  /** Drops the plan once the mail's record is written. */
  async forget(documentId: string): Promise<void> {
    await this.deps.redis.del(this.deps.keys.mailPlan(documentId));
  }

  /** Reads the mail, then adds a child job for each part that is to be read. */
  private async split(job: Job<JobPayload, ResultRecord>, bytes: Buffer, payload: JobPayload, identity: DocumentIdentity): Promise<MailPlan> {
    const { queue } = this.deps;
    const depth = payload.parent?.depth ?? 0;
    if (depth >= queue.limits.maxMailDepth) throw new DocsiftError('TOO_LARGE', `the mail is nested ${depth + 1} deep; limits.maxMailDepth is ${queue.limits.maxMailDepth}`);
    const started = performance.now();
    const { text, mail } = await this.deps.extractor.readMail(bytes, textLimits(queue));
    const textMs = Math.round(performance.now() - started);
    const parts: Array<{ filename: string; role: 'body' | 'attachment'; bytes: Uint8Array; inline?: boolean }> = [];
    if (mail.body.trim()) parts.push({ filename: `${identity.filename} (body).txt`, role: 'body', bytes: Buffer.from(bodyDocument(mail), 'utf8') });
    for (const a of mail.attachments) parts.push({ filename: a.filename, role: 'attachment', bytes: a.bytes, inline: a.inline });
    const children: MailChild[] = [];
    for (const part of parts) {
      const base = { filename: part.filename, role: part.role, bytes: part.bytes.length };
      const skip = (code: string | null, message: string, format: string | null = null) => children.push({ ...base, documentId: null, format, status: 'skipped', code, message });
      if (part.inline) {
        skip(null, 'an image shown in the body (cid:), not a file sent along');
        continue;
      }
      let format: string;
      try {
        format = detectFormat(part.bytes);
      } catch (err) {
        if (!(err instanceof DocsiftError)) throw err;
        skip(err.code, err.message);
        continue;
      }
      if (part.bytes.length > queue.limits.maxBytes) {
        skip('TOO_LARGE', `${part.bytes.length} bytes; the queue allows ${queue.limits.maxBytes} (limits.maxBytes)`, format);
        continue;
      }
      if (isMail(format) && depth + 1 >= queue.limits.maxMailDepth) {
        skip('TOO_LARGE', `a mail nested ${depth + 2} deep is not opened (limits.maxMailDepth ${queue.limits.maxMailDepth})`, format);
        continue;
      }
      const documentId = await this.enqueue(job, Buffer.from(part.bytes.buffer, part.bytes.byteOffset, part.bytes.length), {
        filename: part.filename, format, payload, depth: depth + 1, parentId: identity.documentId,
        // A mail put in inbox/invoices/ sends invoices: its attachments are extracted as that type, its body classified.
        ...(part.role === 'attachment' && payload.documentType ? { documentType: payload.documentType } : {}),
      });
      // Its status is read back from its records when the mail completes (outcome()).
      children.push({ ...base, documentId, format, status: 'done' });
    }
    return { headers: mail.headers, text: { format: text.format, pages: text.pages.length, chars: text.chars, warnings: text.warnings }, textMs, children };
  }

  /** A part's job, a child of the mail's (none when the part already has a result or a job). */
  private async enqueue(job: Job, bytes: Buffer, part: { filename: string; format: string; payload: JobPayload; depth: number; parentId: string; documentType?: string }): Promise<string> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const documentId = documentIdFor(sha256, this.deps.pipelineVersion, part.documentType);
    await this.deps.children.add(job, this.deps.queue.name, {
      documentId, sha256, size: bytes.length, filename: part.filename, source: part.payload.source, metadata: part.payload.metadata,
      detectedType: part.format as JobPayload['detectedType'],
      parent: { documentId: part.parentId, depth: part.depth }, documentType: part.documentType,
      store: (holder) => this.deps.store.put(sha256, bytes, holder),
    });
    return documentId;
  }
}
