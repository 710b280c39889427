/**
 * The result record of one completed document: the job's return value, the JSON stored in
 * Redis under <prefix>:result:<documentId>, and the outbox file. docs/RESULTS.md documents it.
 */
export interface ResultRecord {
  documentId: string;
  sha256: string;
  filename: string;
  source: string;
  metadata: Record<string, unknown>;
  queue: string;
  pipelineVersion: string;
  /** Version of every prompt the queue's pipeline uses, from the prompt files' front matter. */
  prompts: Record<string, string>;
  /** The model file and hash, and the LoRA adapters applied (queue model.lora). */
  model: { file: string; sha256: string; lora: string[] };
  /**
   * confidence: the probability of the label's least likely token (docs/RESULTS.md); null when the
   * label was fixed. An e-mail is a container (label "mail"): its body and attachments are classified as documents of their own.
   */
  classification: { label: string; method: 'model' | 'fixed' | 'container'; confidence: number | null };
  documentType: string | null;
  fields: Record<string, unknown> | null;
  /**
   * Per value path ("vendor", "lines.0.amount"), the probability of the least likely token the
   * model wrote for that value, under the schema's grammar at temperature 1 (docs/RESULTS.md):
   * 1.0 is certain, a low value is a guess. Empty with model.decoder "grammar".
   */
  confidence: Record<string, number> | null;
  /** Per field, the pages its value came from: every page when read whole, the chunk's pages when chunked. */
  fieldPages: Record<string, number[]> | null;
  /** Chunks the document was read in; 1 when it fit the model context. */
  chunks: number;
  /** Business rules of the document type (prompts/<type>/rules.json): passed, failed or skipped, with the numbers. */
  checks: Array<{ rule: string; status: 'passed' | 'failed' | 'skipped'; message: string }>;
  /** Per scalar field (arrays item by item: "lines.0.amount"), where its value appears in the text: page, character offsets, text as written; null when nowhere. */
  grounding: Record<string, { page: number; start: number; end: number; text: string } | null> | null;
  /** What the text stage read: format (pdf, image, text, markdown), pages, characters, and which pages OCR read (1-based) with their mean word confidence (0-100). */
  text: { format: string; pages: number; chars: number; ocr: { pages: number[]; meanConfidence: number; engine?: 'libtesseract' | 'tesseract.js' } | null };
  timings: { textMs: number; classifyMs: number; extractMs: number; validateMs: number; totalMs: number };
  /** prompt: evaluated for this document; reused: already in the sequence (fixed prefix); generated: sampled; forced: fixed by the schema, appended in batches. */
  tokens: { prompt: number; reused: number; generated: number; forced: number };
  attempts: number;
  reasks: number;
  warnings: string[];
  jobId: string;
  completedAt: string;
  /**
   * null: final when written. pending: held for review (in Redis only, listed by docsift review).
   * accepted/corrected: made final by a person, with who and when; corrections list old values.
   */
  review: {
    status: 'pending' | 'accepted' | 'corrected';
    reasons: string[];
    by?: string;
    at?: string;
    changes?: Array<{ field: string; from: unknown; to: unknown }>;
  } | null;
  /** On an e-mail's record (text.format eml or msg): its headers. */
  mail?: { from: string; to: string[]; cc: string[]; subject: string; date: string | null; messageId: string | null };
  /** On an e-mail's record: the documents it holds, its body first, then its attachments in order, and how each ended. */
  children?: MailChild[];
  /** On a document that came out of an e-mail: that mail's document id (of the first mail that brought it, when several did). */
  parent?: string;
  /**
   * When the document went on to a larger model's tier (a queue's escalate): every tier in order,
   * with why each handed it on; the fields are the last tier's (docs/TIERS.md).
   */
  tiers?: TierStep[];
  /**
   * When a challenger model answered the same fields (a queue's challenge): its queue and model,
   * and the fields on which the two disagreed (null in fields with onDisagreement "null").
   */
  challenge?: { queue: string; model: string; node?: string; disagreed: string[]; tokens: { prompt: number; reused: number; generated: number; forced: number }; modelMs: number };
  /** The host whose worker wrote this record (DOCSIFT_NODE_NAME, else the hostname). */
  node?: string;
  /**
   * On the record a tier or a challenger wrote for another queue's document (kept in the store of
   * record only): that document and why; its final record is the other queue's.
   */
  for?: { documentId: string; queue: string; as: 'escalation' | 'challenge' };
}

/** One tier a document went through. */
export interface TierStep {
  queue: string;
  /** The model file of that tier. */
  model: string;
  /** The label it gave; null when it failed before one (code says why). */
  label: string | null;
  /** Why it handed the document on; empty for the tier whose result the record holds. */
  reasons: string[];
  totalMs: number;
  /** Time in the model (classify + extract). */
  modelMs: number;
  /** The host that ran this tier (the record's node). */
  node?: string;
  tokens: { prompt: number; reused: number; generated: number; forced: number };
  /** The error that made it hand the document on (MODEL_OUTPUT_INVALID, DOCUMENT_TOO_LONG), or the next tier's failure. */
  code?: string;
  /** The fields this tier re-extracted alone (escalate.fields "doubtful"); the tier before kept the others. */
  fields?: string[];
}

/** One part of an e-mail and what became of it (docs/RESULTS.md). */
export interface MailChild {
  /** The part's own document id (its result is read like any other); null when it was skipped before it had one. */
  documentId: string | null;
  filename: string;
  role: 'body' | 'attachment';
  /** As detected from its bytes; null when no format docsift reads. */
  format: string | null;
  bytes: number;
  /** done: it has a result. failed: it failed for good (code, message). skipped: not read (code, message say why). */
  status: 'done' | 'failed' | 'skipped';
  /** Of a done part: its label and document type. */
  label?: string;
  documentType?: string | null;
  code?: string | null;
  message?: string;
}

/** What a failed document leaves in Redis under <prefix>:failure:<documentId>. */
export interface FailureRecord {
  documentId: string;
  jobId: string;
  queue: string;
  filename: string;
  code: string;
  message: string;
  attempts: number;
  /** false: a permanent code, or the last attempt; the document will not be tried again. */
  willRetry: boolean;
  failedAt: string;
}
