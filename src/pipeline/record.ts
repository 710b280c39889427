import type { ResultRecord } from '@docsift/client';
import type { ExtractedText } from '../text/index.js';
import type { PipelineOutput } from './pipeline.js';

/** The records are the client package's: one definition for the worker and its callers. */
export type { FailureRecord, ResultRecord } from '@docsift/client';

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
}

/** The record of a completed document, from what each stage returned. */
export function makeRecord(parts: {
  identity: DocumentIdentity;
  queue: string;
  pipelineVersion: string;
  prompts: Record<string, string>;
  model: { file: string; sha256: string; lora: string[] };
  text: ExtractedText;
  pipeline: PipelineOutput;
  textMs: number;
  /** Up to the record being made; the outputs' time is logged, not stored (every output stores the same record). */
  totalMs: number;
}): ResultRecord {
  const { identity, pipeline: out, text } = parts;
  return {
    documentId: identity.documentId,
    sha256: identity.sha256,
    filename: identity.filename,
    source: identity.source,
    metadata: identity.metadata,
    queue: parts.queue,
    pipelineVersion: parts.pipelineVersion,
    prompts: parts.prompts,
    model: { file: parts.model.file, sha256: parts.model.sha256, lora: parts.model.lora },
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
    attempts: identity.attempt,
    reasks: out.reasks,
    warnings: out.warnings,
    jobId: identity.jobId,
    completedAt: new Date().toISOString(),
    review: null,
  };
}
