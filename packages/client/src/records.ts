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
  /** confidence: the probability of the label's least likely token (docs/RESULTS.md); null when the label was fixed. */
  classification: { label: string; method: 'model' | 'fixed'; confidence: number | null };
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
  text: { format: string; pages: number; chars: number; ocr: { pages: number[]; meanConfidence: number } | null };
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
