import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { libraryMissing } from './nativeLibraries.js';
import { installedLanguages, languageFile } from './ocrLanguages.js';
import { ConfigError } from '../infra/errors.js';
import { readJson } from './configFile.js';

const MB = 1024 * 1024;
/** 30 days: long enough for a back office to collect results after a holiday, short enough to bound Redis. */
const RECORD_SECONDS = 30 * 24 * 3600;

/**
 * One file per queue in queues/<name>.json. Every option is documented here, with its default;
 * docs/CONFIGURATION.md shows a whole file.
 */
// Nested objects use prefault({}): an absent block is parsed as {}, so each inner default is
// declared once, beside its option, and never repeated in the block's own default.
/** A queue's `ocr` section (its fields are documented where they are declared). */
export const OcrSchema = z.object({
  enabled: z.boolean().default(true),
  /** tesseract language codes read together ("eng", "fra"); each needs its package installed. */
  languages: z.array(z.string().regex(/^[a-z]{3}(_[a-z]+)?$/, 'a tesseract language code such as eng or fra')
    .refine((code) => code !== 'osd', 'osd is orientation detection data (used when installed), not a language')
    .refine((code) => languageFile(code) !== null, { error: (issue) => `no OCR data for "${String(issue.input)}": npm install @tesseract.js-data/${String(issue.input)} (installed: ${installedLanguages().join(', ') || 'none'})` }))
    .min(1).default(['eng']),
  /** Resolution PDF pages are rendered at for OCR; 300 is what scanners use, 200 reads invoices about as well in half the time. */
  dpi: z.number().int().min(72).max(600).default(300),
  /** A PDF page with fewer non-space characters in its text layer (or mostly unmapped glyphs) is OCR'd. */
  minCharsPerPage: z.number().int().min(0).default(20),
  /** Pages OCR'd per document at most; PDF pages beyond it keep their (empty) text layer with a warning, images beyond it are TOO_LARGE. */
  maxPages: z.number().int().min(1).default(50),
  /** Time for one page (rendered, decoded, recognised, up to four orientations); past it the document fails OCR_FAILED. */
  pageTimeoutMs: z.number().int().min(1000).default(120_000),
  /** OS memory cap of an OCR process (RLIMIT_DATA); past it the document fails TOO_LARGE. */
  pageMemoryMb: z.number().int().min(512).default(1024),
  /** OCR processes per worker process; "auto": half the cores (the model and the PDF parser need the rest). */
  workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default('auto'),
  /**
   * Which tesseract reads pages: "libtesseract" is the machine's library (Debian: libtesseract5,
   * installed with tesseract-ocr), ~1.5x faster than "tesseract.js" (WebAssembly, from npm);
   * "auto" takes libtesseract where it loads. Both read the same language data (the npm packages).
   */
  engine: z.enum(['auto', 'libtesseract', 'tesseract.js']).default('auto')
    .refine((e) => e !== 'libtesseract' || libraryMissing('libtesseract') === null, { error: () => `libtesseract cannot be loaded here: ${libraryMissing('libtesseract')}` }),
  /** A document whose OCR'd pages have a lower mean word confidence (0-100) is held for review, when review is on. */
  minConfidence: z.number().min(0).max(100).default(70),
}).strict().prefault({});

export const QueueFileSchema = z.object({
  /** Must equal the file name without .json. Also the BullMQ queue name. */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'lowercase letters, digits, - and _'),
  description: z.string().optional(),
  /**
   * classify-extract: classify into the labels of prompts/classify, then extract with that
   * label's schema (label "other" gets no fields). extract: always use one document type.
   */
  pipeline: z.discriminatedUnion('mode', [
    z.object({ mode: z.literal('classify-extract') }).strict(),
    z.object({ mode: z.literal('extract'), documentType: z.string().min(1) }).strict(),
  ]),
  model: z.object({
    /** Tokens of context per sequence (prompt + document + output). */
    contextSize: z.number().int().min(256).default(8192),
    /** Most tokens generated for one extraction; bounds runaway strings. */
    maxTokens: z.number().int().min(16).default(1024),
    /** 0 = greedy, so the same document and model give the same result. */
    temperature: z.number().min(0).max(2).default(0),
    /**
     * "walk": the schema's fixed text is appended without sampling (jump-forward) and only values
     * are sampled, in the model's natural tokens. "grammar": node-llama-cpp's JSON-schema grammar
     * with every token sampled; the reference to compare against (docsift eval --decoder).
     */
    decoder: z.enum(['walk', 'grammar']).default('walk'),
    /** Re-asks carrying the validation error before MODEL_OUTPUT_INVALID. */
    reasks: z.number().int().min(0).max(5).default(1),
    /** Characters of the document's opening the classifier reads. */
    classifyChars: z.number().int().min(200).default(6000),
    /**
     * LoRA adapters (GGUF) applied on top of the worker's model for this queue: domain adaptation
     * from reviewed results (docsift export-training). Paths relative to the working directory.
     */
    lora: z.array(z.object({ path: z.string().min(1), scale: z.number().min(0).max(4).default(1) }).strict()).default([]),
    /**
     * Documents longer than the context: split on page and paragraph boundaries with overlap,
     * extract per chunk, merge (first non-null scalar, conflicts as warnings; arrays concatenated
     * and de-duplicated). Disabled: such documents fail DOCUMENT_TOO_LONG.
     */
    chunking: z.object({
      enabled: z.boolean().default(true),
      maxChunks: z.number().int().min(1).max(256).default(16),
      overlapChars: z.number().int().min(0).default(400),
    }).strict().prefault({}),
  }).strict().prefault({}),
  /**
   * Jobs in flight per worker process; also the number of model sequences in its context.
   * "auto": as many sequences of model.contextSize as fit in the free GPU memory beside the
   * weights (at most 16), or on CPU at most 4 (measured: more sequences do not help on CPU,
   * where prompt evaluation dominates; ../shared/SPIKES.md).
   */
  concurrency: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
  /** Tries per job for transient errors; permanent error codes never retry. */
  attempts: z.number().int().min(1).max(100).default(3),
  backoff: z.object({
    type: z.enum(['exponential', 'fixed']).default('exponential'),
    delayMs: z.number().int().min(0).default(5000),
  }).strict().prefault({}),
  limits: z.object({
    maxBytes: z.number().int().min(1).default(50 * MB),
    maxPages: z.number().int().min(1).default(500),
    /** Rows read per spreadsheet sheet (XLSX) or CSV file; more are cut with a ROWS_CUT warning. */
    maxRows: z.number().int().min(1).default(5000),
    /**
     * An e-mail's attachments read at most; more are left out with an ATTACHMENTS_CUT warning on
     * the mail's record. Each attachment is as large as the mail allows (maxBytes) at most.
     */
    maxAttachments: z.number().int().min(0).max(1000).default(50),
    /**
     * How deep mail in mail is opened: 1 reads a mail's own attachments; 2 (default) also those of
     * a mail attached to it (a forwarded message); a mail nested deeper is listed, not read.
     */
    maxMailDepth: z.number().int().min(1).max(10).default(2),
    /** Wall-clock limit of text extraction for one document. */
    textTimeoutMs: z.number().int().min(100).default(120_000),
    /**
     * Memory cap of the process that parses PDFs, set by the OS (RLIMIT_DATA: heap and buffers
     * alike); past it the document fails TOO_LARGE. At least 256: Node with pdf.js needs about
     * 150 MB of data mappings to parse a one-page invoice (measured; 128 does not start).
     */
    textMemoryMb: z.number().int().min(256).default(1024),
  }).strict().prefault({}),
  /**
   * OCR of scans: PDF pages without a usable text layer, and images (PNG, JPEG, TIFF, WebP).
   * tesseract.js in child processes, with language data from @tesseract.js-data packages
   * (eng ships with docsift; others: npm install @tesseract.js-data/<code>). docs/OCR.md.
   */
  ocr: OcrSchema,
  /**
   * The library that reads a PDF's text layer: "pdf.js" (from npm: nothing to install) or
   * "poppler", the machine's libpoppler-glib (Debian: libpoppler-glib8; the library pdftotext
   * runs), 2-12x faster (docs/BENCHMARKS.md). Both run in the same capped PDF processes.
   * They space and order a page's words a little differently, so a queue names its engine (no
   * "auto": every node reads a document alike; part of the pipeline version when not the
   * default). It also renders the pages OCR reads (poppler through cairo: a scanned page read in
   * 1.2 s against 1.9-2.4 s).
   */
  pdf: z.object({
    engine: z.enum(['pdf.js', 'poppler']).default('pdf.js')
      .refine((e) => e !== 'poppler' || libraryMissing('poppler') === null, { error: () => `poppler cannot be loaded here: ${libraryMissing('poppler')}` }),
  }).strict().prefault({}),
  /**
   * Job locks and stall detection. A worker holds a job's lock for lockDurationMs and renews it
   * every half of that from its event loop (never blocked: inference and parsing run elsewhere).
   * A worker that dies leaves the lock to expire; a live worker's check every stalledIntervalMs
   * then puts the job back in the queue. After maxStalledCount such returns the job fails
   * WORKER_LOST: a document that keeps killing workers does not loop forever. Defaults suit long
   * GPU jobs; shorter values re-deliver sooner at the cost of more Redis traffic.
   */
  worker: z.object({
    lockDurationMs: z.number().int().min(1000).default(30_000),
    stalledIntervalMs: z.number().int().min(500).default(30_000),
    maxStalledCount: z.number().int().min(0).max(10).default(1),
  }).strict().prefault({}),
  /**
   * Human review before results reach the ledger. A result is held for review when a business
   * rule failed, when a field's value appears nowhere in the document text, when the model's
   * confidence in a field (or in the label) is below minConfidence, or by sampling
   * (sampleRate of all documents, chosen by document id, for quality control). A held result is
   * stored in Redis only; accepting or correcting it (docsift review, or the API) makes it final
   * and writes it to every output.
   */
  review: z.object({
    enabled: z.boolean().default(false),
    failedChecks: z.boolean().default(true),
    ungroundedFields: z.boolean().default(true),
    /** Joint token probability below which a field's value (or the label) needs a person; 0 turns it off. */
    minConfidence: z.number().min(0).max(1).default(0.5),
    sampleRate: z.number().min(0).max(1).default(0),
  }).strict().prefault({}),
  /**
   * Model tiers: a document this queue's model is doubtful about goes on to the queue `to`, whose
   * workers load a larger model (possibly on bigger nodes), and its final record is that tier's,
   * with the path it took (docs/TIERS.md). Each condition under `when` escalates when it holds.
   */
  escalate: z.object({
    to: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
    /**
     * all: the next tier reads the whole document again. doubtful: it re-extracts only the fields
     * in doubt (low confidence, ungrounded, read by a failed rule) and this tier keeps the rest;
     * a doubt about the whole document (its label, its type, invalid output, its length) still
     * sends all of it.
     */
    fields: z.enum(['all', 'doubtful']).default('all'),
    when: z.object({
      /** The output failed the schema after every re-ask (MODEL_OUTPUT_INVALID). */
      invalidOutput: z.boolean().default(true),
      /** The document does not fit this model's context: escalated instead of read in chunks. */
      tooLong: z.boolean().default(true),
      /** A business rule of the document type failed. */
      failedChecks: z.boolean().default(true),
      /** A field's value appears nowhere in the document text. */
      ungroundedFields: z.boolean().default(false),
      /** A field's (or the label's) confidence is below this; 0 turns it off. */
      minConfidence: z.number().min(0).max(1).default(0),
      /** Document types always read by the next tier (the small model only classifies them). */
      documentTypes: z.array(z.string().regex(/^[a-z][a-z0-9_]*$/)).default([]),
    }).strict().prefault({}),
  }).strict().optional(),
  /**
   * A challenger check: a second model (the workers of queue `queue`) answers the same fields;
   * fields on which the two disagree become null and a review reason (onDisagreement "null"), or
   * go to the next tier (onDisagreement "escalate", which needs escalate). docs/TIERS.md.
   */
  challenge: z.object({
    queue: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
    onDisagreement: z.enum(['null', 'escalate']).default('null'),
  }).strict().optional(),
  /** Redis is always written; these are extra. */
  outputs: z.object({
    /** Folder (relative to the working directory) where each result is written as <documentId>.json. */
    outbox: z.object({ dir: z.string().min(1) }).strict().optional(),
    /** Each result as <prefix><documentId>.json in DOCSIFT_S3_BUCKET (an outbox in object storage). */
    s3: z.object({ prefix: z.string().regex(/^([A-Za-z0-9._-]+\/)*$/, 'folder names each ending in /, e.g. results/').default('results/') }).strict().optional(),
    /**
     * POST of every result record, signed with DOCSIFT_WEBHOOK_SECRET. Deliveries are jobs of their
     * own: retried with backoff, then kept in a dead-letter list (docsift deadletter list | replay).
     */
    webhook: z.object({
      url: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL').refine((u) => URL.canParse(u), 'is not a valid URL'),
      attempts: z.number().int().min(1).max(100).default(8),
      backoffMs: z.number().int().min(1).default(2000),
      timeoutMs: z.number().int().min(100).default(10_000),
    }).strict().optional(),
    /** Upsert into DOCSIFT_DATABASE_URL's docsift_results table (create it with docsift db migrate). */
    postgres: z.object({}).strict().optional(),
  }).strict().prefault({}),
  /**
   * What Redis keeps, so that it never fills up (with noeviction, a full Redis refuses every
   * write, BullMQ's included). completed/failed: how many finished jobs BullMQ keeps.
   * recordSeconds: how long result records, failure records and latest-job pointers live, and the
   * longest BullMQ keeps a finished job; 0 keeps them until deleted. A result held for review
   * does not expire until a person decides. deleteBytesWhenFinal: a document's stored bytes
   * (DOCSIFT_STORE=redis) are deleted once it is done or has failed for good, unless another job
   * still needs them or it was held for review (docsift export-training reads those); otherwise
   * they expire after DOCSIFT_STORE_TTL_S.
   */
  retention: z.object({
    completed: z.number().int().min(0).default(1000),
    failed: z.number().int().min(0).default(10000),
    recordSeconds: z.number().int().min(0).default(RECORD_SECONDS),
    deleteBytesWhenFinal: z.boolean().default(true),
  }).strict().prefault({}),
}).strict();

export type QueueConfig = z.infer<typeof QueueFileSchema> & { readonly file: string };

export function loadQueues(queuesDir: string): ReadonlyMap<string, QueueConfig> {
  if (!fs.existsSync(queuesDir)) throw new ConfigError(queuesDir, '(folder)', 'does not exist');
  const queues = new Map<string, QueueConfig>();
  for (const entry of fs.readdirSync(queuesDir).filter((f) => f.endsWith('.json')).sort()) {
    const file = path.join(queuesDir, entry);
    const queue = readJson(file, QueueFileSchema);
    if (queue.name !== entry.slice(0, -'.json'.length)) {
      throw new ConfigError(file, 'name', `must equal the file name "${entry.slice(0, -5)}"`);
    }
    queues.set(queue.name, { ...queue, file });
  }
  if (queues.size === 0) throw new ConfigError(queuesDir, '(folder)', 'holds no queue file (*.json)');
  return queues;
}
