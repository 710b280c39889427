/**
 * Every failure a user can see carries one of these stable codes. The code, not the message,
 * decides whether BullMQ retries the job (permanent codes fail at once, transient ones are
 * retried with the queue's backoff) and which HTTP status the API answers with. docs/ERRORS.md lists the same codes (a unit test keeps the
 * two in step).
 */
export const ERROR_CODES = {
  UNSUPPORTED_FORMAT: { retry: false, http: 415, summary: 'The bytes are not a format docsift reads: PDF, PNG, JPEG, TIFF, WebP (by OCR), DOCX, XLSX, HTML, CSV, e-mail (.eml, Outlook .msg), plain text or markdown; the message says what they are.' },
  CORRUPT_DOCUMENT: { retry: false, http: 400, summary: 'The document claims a format but cannot be parsed as one.' },
  ENCRYPTED: { retry: false, http: 400, summary: 'The PDF is password-protected.' },
  EMPTY_TEXT: { retry: false, http: 400, summary: 'No text to read: a zero-byte file, a whitespace-only text, or a scan in which OCR found no words (or OCR is off for the queue).' },
  OCR_FAILED: { retry: false, http: 400, summary: 'OCR could not read a page: past ocr.pageTimeoutMs, the recogniser exited, or the queue names a language whose @tesseract.js-data package is not installed.' },
  TOO_LARGE: { retry: false, http: 413, summary: 'Over a limit of the queue: bytes, pages, rows, parser memory, or mail nested deeper than limits.maxMailDepth.' },
  EXTRACTION_TIMEOUT: { retry: false, http: 400, summary: 'Text extraction ran past the queue\'s time limit.' },
  DOCUMENT_TOO_LONG: { retry: false, http: 400, summary: 'The text does not fit the model context; it is never cut silently.' },
  MODEL_OUTPUT_INVALID: { retry: false, http: 400, summary: 'The model output failed schema validation after every re-ask.' },
  DOCUMENT_MISSING: { retry: false, http: 404, summary: 'The stored bytes the job points at are gone (TTL expired or file removed).' },
  UNREADABLE_FILE: { retry: false, http: 403, summary: 'A file cannot be read: one the CLI is given (enqueue, extract-text: missing, a folder, no permission), or one under the document roots that exists but cannot be opened (permission, I/O error; there a folder is PATH_NOT_ALLOWED and a missing file DOCUMENT_MISSING).' },
  UNKNOWN_FOLDER: { retry: false, http: 400, summary: 'A watched folder\'s inbox/<sub>/ names neither a queue nor a document type.' },
  INVALID_JOB: { retry: false, http: 400, summary: 'The job payload does not match the documented contract.' },
  PATH_NOT_ALLOWED: { retry: false, http: 403, summary: 'A path a job, request or watched folder names is outside the document roots, is a symbolic link, or is not a regular file; nothing was read.' },
  KEY_NOT_ALLOWED: { retry: false, http: 403, summary: 'A job\'s ref.key is not a document key under this installation\'s prefix (<prefix>:doc:<sha256>); nothing was read.' },
  DOCUMENT_ID_MISMATCH: { retry: false, http: 400, summary: 'The job\'s documentId is not the one its bytes and pipeline give (sha256 + pipeline version + type); a forged id, or a producer with another pipeline version.' },
  CALLBACK_NOT_ALLOWED: { retry: false, http: 403, summary: 'A callback or webhook URL names a host or address the operator did not allow (DOCSIFT_CALLBACK_HOSTS), carries credentials, or callbacks are off (no DOCSIFT_CALLBACK_SECRET).' },
  WORKER_LOST: { retry: false, http: 500, summary: 'The workers processing the document died (killed, out of memory, crashed) more often than worker.maxStalledCount allows.' },
  MAILBOX_UNAVAILABLE: { retry: true, http: 503, summary: 'An IMAP mailbox (mailboxes.json) cannot be reached, logged into or opened; docsift mail tries again on the next poll.' },
  STORE_UNAVAILABLE: { retry: true, http: 503, summary: 'The S3-compatible store (DOCSIFT_STORE=s3) did not answer or refused the request (network, credentials, bucket); retried with backoff.' },
  REDIS_UNAVAILABLE: { retry: true, http: 503, summary: 'Redis did not answer; nothing was enqueued or changed. Try again.' },
  OUT_OF_MEMORY: { retry: true, http: 503, summary: 'Memory ran out during this job (GPU memory for the model, or an allocation in the worker); the sequence is reset and the job retried with backoff. A worker process killed by the OS or V8 for memory is re-delivered instead (see WORKER_LOST).' },
  MODEL_ERROR: { retry: true, http: 500, summary: 'The inference engine failed on this job (context lost, decode error); the sequence is reset and the job retried.' },
  OUTPUT_FAILED: { retry: true, http: 500, summary: 'A result output could not be written; retried.' },
  INTERNAL: { retry: true, http: 500, summary: 'An unexpected error; retried, then failed with this code.' },
  // What an API request (or a review command) is answered with; never a document's failure.
  BAD_REQUEST: { retry: false, http: 400, summary: 'A request field is missing or malformed; the message names it (body.priority: …).' },
  UNAUTHORIZED: { retry: false, http: 401, summary: 'No valid bearer token (API) or basic-auth credentials (board).' },
  NOT_FOUND: { retry: false, http: 404, summary: 'No document (or no result) with this id.' },
  QUEUE_NOT_FOUND: { retry: false, http: 404, summary: 'No queue of that name is configured; the message lists the known ones.' },
  NOT_READY: { retry: false, http: 409, summary: 'The document has no result yet: it is waiting, delayed or being processed.' },
  NOT_CANCELLABLE: { retry: false, http: 409, summary: 'Only a waiting document can be cancelled; this one is running or finished.' },
  NOT_PENDING_REVIEW: { retry: false, http: 409, summary: 'The document is not waiting for review: never held, or a decision was already made (perhaps a moment ago, by someone else).' },
  INVALID_CORRECTION: { retry: false, http: 400, summary: 'A review correction names fields the document type does not have, or values its schema refuses.' },
} as const satisfies Record<string, { retry: boolean; http: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class DocsiftError extends Error {
  override readonly name = 'DocsiftError';
  readonly code: ErrorCode;
  /** Extra fields for logs and failure records; never the document's bytes. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retry;
  }
}

/**
 * What llama.cpp (CUDA, Vulkan, Metal, CPU buffers), node-llama-cpp and Node say when an
 * allocation fails. Matched on the message because none of them has an error class for it.
 */
const OUT_OF_MEMORY = /out of memory|failed to allocate|bad_alloc|cudaMalloc|ErrorOutOfDeviceMemory|InsufficientMemory|allocation failed|insufficient memory/i;

export function isOutOfMemory(err: unknown): boolean {
  return err instanceof Error && (OUT_OF_MEMORY.test(err.message) || OUT_OF_MEMORY.test(err.name));
}

/** Anything thrown that is not ours becomes INTERNAL (or OUT_OF_MEMORY), keeping the original as the cause. */
export function toDocsiftError(err: unknown): DocsiftError {
  if (err instanceof DocsiftError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new DocsiftError(isOutOfMemory(err) ? 'OUT_OF_MEMORY' : 'INTERNAL', message, { cause: err });
}

/**
 * Failures travel through BullMQ as a plain string (job.failedReason), so the code leads the
 * message in a fixed form that formatFailure writes and parseFailure reads back.
 */
export function formatFailure(code: ErrorCode | string, message: string): string {
  return `${code}: ${message}`;
}

export function parseFailure(reason: string | undefined): { code: string; message: string } {
  // BullMQ's own words for a job whose workers kept dying.
  if (/stalled more than allowable limit/.test(reason ?? '')) {
    return { code: 'WORKER_LOST', message: 'the workers processing this document died more often than worker.maxStalledCount allows (a document that crashes or exhausts workers?)' };
  }
  const match = /^([A-Z][A-Z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (match) return { code: match[1]!, message: match[2]! };
  return { code: 'INTERNAL', message: reason ?? 'unknown failure' };
}

/** Configuration problems stop a process before it does any work; they are not job errors. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly key: string;

  constructor(file: string, key: string, problem: string) {
    super(`${file}: ${key}: ${problem}`);
    this.file = file;
    this.key = key;
  }
}
