import type { MailChild, ResultRecord } from '@docsift/client';
import type { ExtractedText, MailHeaders } from '../text/index.js';
import type { PipelineOutput } from './pipeline.js';

/** The records are the client package's: one definition for the worker and its callers. */
export type { FailureRecord, MailChild, ResultRecord, TierStep } from '@docsift/client';

/** Who a document is: checked by the caller (the worker recomputes the id from the bytes). */
export interface DocumentIdentity {
  documentId: string;
  sha256: string;
  filename: string;
  source: string;
  metadata: Record<string, unknown>;
  jobId: string;
  /** This attempt's number, from 1. */
  attempt: number;
  /** The e-mail the document came out of (its document id). */
  parent?: string;
}

/** Who made a record and for which document: what every record has, whatever it holds. */
interface Provenance {
  identity: DocumentIdentity;
  queue: string;
  pipelineVersion: string;
  prompts: Record<string, string>;
  model: { file: string; sha256: string; lora: string[] };
}

/** The record's fields that say which document it is, who sent it and what processed it. */
function provenance({ identity, queue, pipelineVersion, prompts, model }: Provenance) {
  const { documentId, sha256, filename, source, metadata, attempt, jobId, parent } = identity;
  return {
    documentId, sha256, filename, source, metadata, queue, pipelineVersion, prompts, model: { file: model.file, sha256: model.sha256, lora: model.lora },
    attempts: attempt, jobId, completedAt: new Date().toISOString(), review: null, ...(parent ? { parent } : {}),
  };
}

/** The record of a completed document, from what each stage returned. */
export function makeRecord(parts: Provenance & {
  text: ExtractedText;
  pipeline: PipelineOutput;
  textMs: number;
  /** Up to the record being made; the outputs' time is logged, not stored (every output stores the same record). */
  totalMs: number;
}): ResultRecord {
  const { pipeline: out, text } = parts;
  return {
    ...provenance(parts),
    classification: out.classification,
    documentType: out.documentType,
    fields: out.fields,
    confidence: out.confidence,
    fieldPages: out.fieldPages,
    chunks: out.chunks,
    checks: out.checks,
    grounding: out.grounding,
    text: { format: text.format, pages: text.pages.length, chars: text.chars, ocr: text.ocr },
    timings: { textMs: parts.textMs, ...out.timings, totalMs: parts.totalMs },
    tokens: out.tokens,
    reasks: out.reasks,
    warnings: out.warnings,
  };
}

/**
 * The record of an e-mail: a container whose body and attachments are documents of their own,
 * listed with their outcomes. No model ran on it (its body did, as its own document).
 */
export function makeMailRecord(parts: Provenance & {
  /** What the text stage read of the mail itself (its body document, as extract() gives it). */
  text: { format: string; pages: number; chars: number; warnings: string[] };
  headers: MailHeaders;
  children: MailChild[];
  warnings: string[];
  textMs: number;
  totalMs: number;
}): ResultRecord {
  const { text } = parts;
  return {
    ...provenance(parts),
    classification: { label: 'mail', method: 'container', confidence: null },
    documentType: null,
    fields: null,
    confidence: null,
    fieldPages: null,
    chunks: 0,
    checks: [],
    grounding: null,
    text: { format: text.format, pages: text.pages, chars: text.chars, ocr: null },
    timings: { textMs: parts.textMs, classifyMs: 0, extractMs: 0, validateMs: 0, totalMs: parts.totalMs },
    tokens: { prompt: 0, reused: 0, generated: 0, forced: 0 },
    reasks: 0,
    warnings: [...text.warnings, ...parts.warnings],
    mail: parts.headers,
    children: parts.children,
  };
}
