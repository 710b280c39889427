import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import type { RedisClient } from '../../queue/connection.js';
import { z } from 'zod';
import { DocsiftError, ERROR_CODES, type ErrorCode } from '../../infra/errors.js';

/** Every error answer's body. */
export const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** An error body, with the HTTP status its code declares in src/infra/errors.ts. */
export function send(reply: FastifyReply, code: ErrorCode, message: string) {
  return reply.code(ERROR_CODES[code].http).send({ error: { code, message } });
}

/**
 * Maps whatever a route throws to a coded answer: schema validation to BAD_REQUEST naming the
 * field, a DocsiftError to its code's status, fastify's own client errors to BAD_REQUEST (or
 * TOO_LARGE), anything else to REDIS_UNAVAILABLE when Redis is down, else INTERNAL (logged).
 */
export function setErrorHandler(app: FastifyInstance<any, any, any, any, any>, redis: RedisClient, maxBytes: number): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issue = err.validation[0];
      const field = issue ? issue.instancePath.replace(/^\//, '').replace(/\//g, '.') : '';
      return send(reply, 'BAD_REQUEST', `${err.validationContext ?? 'request'}${field ? `.${field}` : ''}: ${issue?.message ?? 'invalid'}`);
    }
    if (err instanceof DocsiftError) return send(reply, err.code, err.message);
    if (redis.status !== 'ready') return send(reply, 'REDIS_UNAVAILABLE', 'Redis is unreachable; try again');
    if (err.code === 'FST_REQ_FILE_TOO_LARGE' || err.statusCode === 413) return send(reply, 'TOO_LARGE', `a file is larger than ${maxBytes} bytes`);
    if (err.statusCode && err.statusCode < 500) return send(reply, 'BAD_REQUEST', err.message);
    req.log.error({ err }, 'request failed');
    return send(reply, 'INTERNAL', 'internal error');
  });
}
