import path from 'node:path';
import type { Multipart } from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { RedisClient } from '../../queue/connection.js';
import { z } from 'zod';
import type { Config, QueueConfig } from '../../config/index.js';
import { DocsiftError } from '../../infra/errors.js';
import { readFileUnderRoots } from '../../infra/safeFile.js';
import type { DocumentQueue, DocumentStore, Keys, StagedDocument } from '../../queue/index.js';
import { findDocument, latestJob, PublicState, publicState } from '../documentStatus.js';
import type { Enqueuer, EnqueueOutcome } from '../enqueue.js';
import { ErrorBody } from './errors.js';

export interface ApiQueue {
  config: QueueConfig;
  queue: DocumentQueue;
  enqueuer: Enqueuer;
}

export interface DocumentRoutesDeps {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  queues: ReadonlyMap<string, ApiQueue>;
}

const Metadata = z.record(z.string(), z.unknown()).describe('JSON object copied onto the result record');

const PathBody = z.object({
  path: z.string().min(1).describe('a file under one of DOCSIFT_API_ROOTS (relative paths: under the first root)'),
  queue: z.string().default('documents'),
  priority: z.number().int().min(1).max(2_097_152).optional().describe('BullMQ priority: 1 is the highest; unset is ahead of any priority'),
  metadata: Metadata.optional(),
  force: z.boolean().default(false).describe('process again even if a result exists'),
  callbackUrl: z.string().regex(/^https?:\/\//, 'an http:// or https:// URL').max(2048).optional().describe('POSTed the result record when done (signed with DOCSIFT_WEBHOOK_SECRET when set)'),
}).strict();

/** Multipart form fields beside the files; values arrive as strings. */
const UploadFields = z.object({
  queue: z.string().default('documents'),
  priority: z.coerce.number().int().min(1).max(2_097_152).optional(),
  metadata: z.string().transform((s, ctx) => {
    try {
      const v: unknown = JSON.parse(s);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch { /* reported below */ }
    ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
    return z.NEVER;
  }).optional(),
  force: z.enum(['true', 'false']).transform((v) => v === 'true').default(false),
  callbackUrl: z.string().regex(/^https?:\/\//, 'an http:// or https:// URL').max(2048).optional(),
}).strict();

const Accepted = z.object({
  documents: z.array(z.object({
    documentId: z.string(),
    jobId: z.string(),
    filename: z.string(),
    queue: z.string(),
    status: z.enum(['queued', 'duplicate', 'done']).describe('duplicate: an existing job for the same bytes and pipeline; done: an existing result'),
    statusUrl: z.string(),
    resultUrl: z.string(),
  })),
});

const Status = PublicState.extend({ queue: z.string().nullable(), resultUrl: z.string().nullable() });

export const IdParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,160}$/, 'a document id') });

interface ReceivedUpload {
  files: Array<{ filename: string; staged: StagedDocument }>;
  fields: z.infer<typeof UploadFields>;
}

/**
 * Reads a multipart upload part by part, streaming each file into the document store while it
 * is hashed, so the API holds a chunk of a file at a time, never a file (measured before: 8 x 40
 * MB in one request took it from 136 to 517 MB RSS). A bad filename is refused before its bytes
 * are read; past a cap the request ends 413 and whatever it staged is discarded.
 */
async function receiveUpload(parts: AsyncIterableIterator<Multipart>, store: DocumentStore, limits: { maxFileBytes: number; maxRequestBytes: number; maxFiles: number }): Promise<ReceivedUpload> {
  const files: ReceivedUpload['files'] = [];
  const fields: Record<string, string> = {};
  let requestBytes = 0;
  try {
    for await (const part of parts) {
      if (part.type !== 'file') {
        fields[part.fieldname] = String(part.value);
        continue;
      }
      if (files.length >= limits.maxFiles) throw new DocsiftError('TOO_LARGE', `the request carries more than ${limits.maxFiles} files (DOCSIFT_API_MAX_FILES)`);
      const filename = uploadFilename(part.filename);
      const counted = async function* (): AsyncGenerator<Buffer> {
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          requestBytes += chunk.length;
          if (requestBytes > limits.maxRequestBytes) throw new DocsiftError('TOO_LARGE', `the request carries more than ${limits.maxRequestBytes} bytes (DOCSIFT_API_MAX_REQUEST_BYTES)`);
          yield chunk;
        }
      };
      files.push({ filename, staged: await store.stage(counted(), limits.maxFileBytes) });
    }
    const parsed = UploadFields.safeParse(fields);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new DocsiftError('BAD_REQUEST', `body.${issue.path.join('.') || '(form)'}: ${issue.message}`);
    }
    if (files.length === 0) throw new DocsiftError('BAD_REQUEST', 'body.file: no file in the upload');
    return { files, fields: parsed.data };
  } catch (err) {
    for (const file of files) await file.staged.discard().catch(() => undefined);
    throw err;
  }
}

/**
 * The name an uploaded file keeps on its result: the last path segment of what the client sent.
 * Refused (400) rather than cut: longer than 255 bytes (what file systems allow, and the result,
 * the watched folder and the outbox all name files after it) or holding control characters.
 */
export function uploadFilename(raw: string | undefined): string {
  const name = path.basename((raw ?? '').replace(/\\/g, '/'));
  if (name === '' || name === '.' || name === '..') return 'document';
  if (Buffer.byteLength(name) > 255) throw new DocsiftError('BAD_REQUEST', `body.file: the filename has ${Buffer.byteLength(name)} bytes; at most 255`);
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new DocsiftError('BAD_REQUEST', 'body.file: the filename holds control characters');
  return name;
}

/**
 * POST /v1/documents (upload or path), GET /v1/documents/:id (status), GET …/result, DELETE
 * (cancel a waiting document).
 */
export async function documentRoutes(scope: FastifyInstance<any, any, any, any, any>, deps: DocumentRoutesDeps): Promise<void> {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { config, redis, keys, queues } = deps;
  const maxBytes = Math.max(...[...queues.values()].map((q) => q.config.limits.maxBytes));
  // Every queue's enqueuer shares the process's one document store; uploads stream into it
  // before the form says which queue they are for (fields may come after the files).
  const uploadStore = [...queues.values()][0]!.enqueuer.store;
  // A file may be as large as the largest queue allows; the chosen queue's own limit is checked at enqueue.
  const uploadLimits = { maxFileBytes: maxBytes, maxRequestBytes: config.env.DOCSIFT_API_MAX_REQUEST_BYTES, maxFiles: config.env.DOCSIFT_API_MAX_FILES };

  const queueOf = (name: string): ApiQueue => {
    const q = queues.get(name);
    if (!q) throw new DocsiftError('QUEUE_NOT_FOUND', `no queue "${name}" (known: ${[...queues.keys()].join(', ')})`);
    return q;
  };
  const describe = (o: EnqueueOutcome, filename: string, queue: string) => ({
    documentId: o.documentId, jobId: o.jobId, filename, queue, status: o.status,
    statusUrl: `/v1/documents/${o.documentId}`, resultUrl: `/v1/documents/${o.documentId}/result`,
  });

  /** Files streamed into the store, then enqueued to the form's queue; what is not enqueued is discarded. */
  const enqueueUploaded = async (parts: AsyncIterableIterator<Multipart>) => {
    const upload = await receiveUpload(parts, uploadStore, uploadLimits);
    const documents = [];
    try {
      const q = queueOf(upload.fields.queue);
      while (upload.files.length) {
        const file = upload.files.shift()!;
        const { metadata, force, callbackUrl, priority } = upload.fields;
        const outcome = await q.enqueuer.enqueueStaged(file.staged, { filename: file.filename, source: 'api', metadata, force, callbackUrl, priority });
        documents.push(describe(outcome, file.filename, q.config.name));
      }
    } finally {
      for (const file of upload.files) await file.staged.discard().catch(() => undefined);
    }
    return documents;
  };

  /** A file under DOCSIFT_API_ROOTS (relative paths under the first), opened once and checked as opened. */
  const enqueueByPath = async (body: z.infer<typeof PathBody> | null | undefined) => {
    if (!body) throw new DocsiftError('BAD_REQUEST', 'body: send multipart/form-data with files, or JSON with a path');
    const q = queueOf(body.queue);
    const roots = config.env.DOCSIFT_API_ROOTS;
    if (roots.length === 0) throw new DocsiftError('PATH_NOT_ALLOWED', 'body.path: this API accepts uploads only: no DOCSIFT_API_ROOTS are configured');
    const requested = path.isAbsolute(body.path) || body.path.split(/[\\/]/).includes('..') ? body.path : path.join(path.resolve(roots[0]!), body.path);
    const file = await readFileUnderRoots(requested, roots, q.config.limits.maxBytes);
    const filename = path.basename(file.realPath);
    const { metadata, force, callbackUrl, priority } = body;
    const outcome = await q.enqueuer.enqueue({ bytes: file.bytes, filename, source: 'api', metadata, force, callbackUrl, priority });
    return [describe(outcome, filename, q.config.name)];
  };

  app.post('/v1/documents', {
    schema: {
      summary: 'Enqueue documents',
      description: 'Either multipart/form-data with one or more files (fields: queue, priority, metadata as a JSON string, force, callbackUrl), or JSON naming a file under an allowed root.',
      consumes: ['application/json', 'multipart/form-data'],
      // Multipart requests reach validation with a null body; their fields are checked in the handler.
      body: PathBody.nullish(),
      response: { 202: Accepted, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 413: ErrorBody },
    },
  }, async (req, reply) => {
    const documents = req.isMultipart() ? await enqueueUploaded(req.parts()) : await enqueueByPath(req.body);
    return reply.code(202).send({ documents });
  });

  const bullQueues = new Map([...queues].map(([name, q]) => [name, q.queue]));
  const statusOf = (documentId: string) => findDocument(bullQueues, redis, keys, documentId);

  app.get('/v1/documents/:id', {
    schema: { summary: 'Where a document stands', params: IdParams, response: { 200: Status, 401: ErrorBody, 404: ErrorBody } },
  }, async (req) => {
    const { status, queue } = await statusOf(req.params.id);
    if (status.state === 'unknown') throw new DocsiftError('NOT_FOUND', `no document ${req.params.id}`);
    return { ...publicState(status), queue, resultUrl: status.state === 'done' ? `/v1/documents/${status.documentId}/result` : null };
  });

  app.get('/v1/documents/:id/result', {
    schema: { summary: 'The result record of a completed document', params: IdParams, response: { 200: z.record(z.string(), z.unknown()), 401: ErrorBody, 404: ErrorBody, 409: ErrorBody } },
  }, async (req, reply) => {
    const { status } = await statusOf(req.params.id);
    if (status.state === 'done') return status.record as unknown as Record<string, unknown>;
    if (status.state === 'unknown') throw new DocsiftError('NOT_FOUND', `no document ${req.params.id}`);
    // The one answer whose status is not its code's: a failed document has no result (409), and
    // the body carries the document's own failure code, whatever that code's status would be.
    if (status.state === 'failed') return reply.code(409).send({ error: { code: status.code, message: `the document failed: ${status.message}` } });
    throw new DocsiftError('NOT_READY', `the document is ${status.state}`);
  });

  app.delete('/v1/documents/:id', {
    schema: { summary: 'Cancel a document that is still waiting', params: IdParams, response: { 200: z.object({ documentId: z.string(), state: z.literal('cancelled') }), 401: ErrorBody, 404: ErrorBody, 409: ErrorBody } },
  }, async (req) => {
    const documentId = req.params.id;
    const latest = await latestJob(redis, keys, documentId);
    for (const [name, q] of queues) {
      const jobId = latest?.queue === name ? latest.jobId : documentId;
      const state = await q.queue.getJobState(jobId);
      if (state === 'unknown') continue;
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children') {
        await q.queue.remove(jobId);
        await redis.del(keys.latestJob(documentId));
        return { documentId, state: 'cancelled' as const };
      }
      throw new DocsiftError('NOT_CANCELLABLE', `the document is ${state === 'active' ? 'being processed' : state}; only waiting documents can be cancelled`);
    }
    throw new DocsiftError('NOT_FOUND', `no waiting job for document ${documentId}`);
  });
}
