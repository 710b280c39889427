import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ResultRecord } from './records.js';

export type { FailureRecord, ResultRecord } from './records.js';

/**
 * What a document to enqueue can be: bytes, a stream, a file on this machine (`path`, read and
 * uploaded), or a file on the docsift server under its document roots (`serverPath`, read there;
 * HttpClient only).
 */
export type DocumentInput = Buffer | Uint8Array | Readable | { path: string } | { serverPath: string };

export interface EnqueueOptions {
  /** Required for bytes and streams; defaults to the file's name for paths. */
  filename?: string;
  queue?: string;
  /** BullMQ priority: 1 is the highest. */
  priority?: number;
  metadata?: Record<string, unknown>;
  force?: boolean;
}

export interface Enqueued {
  documentId: string;
  jobId: string;
  queue: string;
  status: 'queued' | 'duplicate' | 'done';
}

export interface DocumentState {
  documentId: string;
  state: 'waiting' | 'active' | 'delayed' | 'done' | 'failed';
  stage: string | null;
  attempts: number;
  error: { code: string; message: string } | null;
}

/** The document ended failed; `code` is one of docs/ERRORS.md. */
export class DocumentFailedError extends Error {
  override readonly name = 'DocumentFailedError';
  constructor(readonly documentId: string, readonly code: string, message: string) {
    super(`${documentId}: ${code}: ${message}`);
  }
}

export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  constructor(readonly documentId: string, readonly lastState: string) {
    super(`${documentId} is still ${lastState}`);
  }
}

/** The one interface both clients implement, over HTTP or straight over Redis. */
export interface DocsiftClient {
  enqueue(input: DocumentInput, options?: EnqueueOptions): Promise<Enqueued>;
  /** null when docsift knows no such document. */
  status(documentId: string): Promise<DocumentState | null>;
  /** null until the document is done. */
  result(documentId: string): Promise<ResultRecord | null>;
  /** Resolves with the record; rejects with DocumentFailedError (code NOT_FOUND at once for an unknown or cancelled id) or WaitTimeoutError. */
  waitForResult(documentId: string, options?: { timeoutMs?: number; pollMs?: number }): Promise<ResultRecord>;
  close(): Promise<void>;
}

/** Reads any DocumentInput into memory with its file name (streams up to maxBytes). */
export async function readInput(input: DocumentInput, options: EnqueueOptions, maxBytes = 512 * 1024 * 1024): Promise<{ bytes: Buffer; filename: string }> {
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) {
    return { bytes: Buffer.from(input), filename: options.filename ?? 'document' };
  }
  if ('serverPath' in input) throw new Error('serverPath names a file on the docsift server: enqueue it with the HttpClient');
  if ('path' in input && typeof input.path === 'string' && !('pipe' in input)) {
    return { bytes: await fs.readFile(input.path), filename: options.filename ?? path.basename(input.path) };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input as Readable) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > maxBytes) throw new Error(`the stream is larger than ${maxBytes} bytes`);
    chunks.push(buf);
  }
  return { bytes: Buffer.concat(chunks), filename: options.filename ?? 'document' };
}

/** The polling loop both clients share. */
export async function pollForResult(client: DocsiftClient, documentId: string, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<ResultRecord> {
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  let last = 'unknown';
  for (;;) {
    const state = await client.status(documentId);
    // Nothing will ever arrive for a document docsift does not know (never enqueued, cancelled,
    // or its records expired): say so now rather than at the timeout.
    if (!state) throw new DocumentFailedError(documentId, 'NOT_FOUND', 'docsift knows no such document (never enqueued, cancelled, or its records expired)');
    {
      last = state.state;
      if (state.state === 'done') {
        const record = await client.result(documentId);
        if (record) return record;
      } else if (state.state === 'failed') {
        throw new DocumentFailedError(documentId, state.error?.code ?? 'INTERNAL', state.error?.message ?? 'failed');
      }
    }
    if (Date.now() > deadline) throw new WaitTimeoutError(documentId, last);
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}
