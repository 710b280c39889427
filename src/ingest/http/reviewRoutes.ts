import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ReviewDesk } from '../../outputs/index.js';
import { IdParams } from './documentRoutes.js';
import { ErrorBody } from './errors.js';

/** The review desk over HTTP: list, show, accept, correct (docs/REVIEW.md). */
export async function reviewRoutes(scope: FastifyInstance<any, any, any, any, any>, deps: { desk: ReviewDesk }): Promise<void> {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { desk } = deps;
  const AnyRecord = z.record(z.string(), z.unknown());
  const By = z.object({ by: z.string().min(1).max(200).describe('who decides; recorded on the final record') });
  app.get('/v1/reviews', {
    schema: { summary: 'Documents waiting for review', response: { 200: z.object({ reviews: z.array(z.object({ documentId: z.string(), filename: z.string(), queue: z.string(), reasons: z.array(z.string()) })) }), 401: ErrorBody } },
  }, async () => ({ reviews: (await desk.list(1000)).map((r) => ({ documentId: r.documentId, filename: r.filename, queue: r.queue, reasons: r.review?.reasons ?? [] })) }));
  app.get('/v1/reviews/:id', {
    schema: { summary: 'A record held for review', params: IdParams, response: { 200: AnyRecord, 401: ErrorBody, 404: ErrorBody } },
  }, async (req) => (await desk.show(req.params.id)) as unknown as Record<string, unknown>);
  app.post('/v1/reviews/:id/accept', {
    schema: { summary: 'Accept a held record: it becomes final and goes to every output', params: IdParams, body: By, response: { 200: AnyRecord, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody } },
  }, async (req) => (await desk.accept(req.params.id, req.body.by)) as unknown as Record<string, unknown>);
  app.post('/v1/reviews/:id/correct', {
    schema: { summary: 'Correct fields of a held record: the corrected record becomes final and goes to every output', params: IdParams, body: By.extend({ fields: AnyRecord.describe('the fields to replace, validated against the document type schema') }), response: { 200: AnyRecord, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody } },
  }, async (req) => (await desk.correct(req.params.id, req.body.fields, req.body.by)) as unknown as Record<string, unknown>);
}
