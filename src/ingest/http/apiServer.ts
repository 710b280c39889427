import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { pipelineInfo } from '../../config/index.js';
import type { Logger } from '../../infra/logger.js';
import { readiness, type Metrics } from '../../infra/metrics.js';
import { createOutputs, openOutputDeps, ReviewDesk, type OutputDeps } from '../../outputs/index.js';
import { publishPipeline, S3Bucket } from '../../queue/index.js';
import { requireBearer } from './auth.js';
import { registerBoard, type BoardOptions } from './board.js';
import { documentRoutes, type DocumentRoutesDeps } from './documentRoutes.js';
import { ErrorBody, setErrorHandler } from './errors.js';
import { reviewRoutes } from './reviewRoutes.js';

export { assertSafeBind } from './auth.js';

export interface ApiDeps extends DocumentRoutesDeps {
  logger: Logger;
  metrics: Metrics;
  /** Mount Bull Board at /board (basic auth, not the bearer tokens). */
  board?: Omit<BoardOptions, 'basePath'>;
  /**
   * Where reviewed records are delivered: the process's one delivery queue and PostgreSQL pool.
   * Without them the API makes its own and closes them with itself.
   */
  outputs?: OutputDeps;
}

/**
 * The HTTP API, built but not started (tests use inject() or listen on port 0): fastify with
 * OpenAPI, bearer auth and coded errors, then one plugin per concern (documents, reviews, the
 * board) with its dependencies passed in.
 */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance<any, any, any, any, any>> {
  const { config, redis, keys, queues } = deps;
  const maxBytes = Math.max(...[...queues.values()].map((q) => q.config.limits.maxBytes));
  const app = Fastify({ loggerInstance: deps.logger.child({ component: 'api' }) as FastifyBaseLogger, bodyLimit: 1024 * 1024 }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: { title: 'docsift API', version: '1', description: 'Enqueue documents, follow them, read results.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // The plugin's own limits are a backstop; the upload route counts and answers first.
  await app.register(multipart, { limits: { fileSize: maxBytes + 1, files: config.env.DOCSIFT_API_MAX_FILES + 1, fields: 20, fieldSize: 64 * 1024 } });
  requireBearer(app, config.env.DOCSIFT_API_TOKENS, (url) => url === '/healthz' || url === '/readyz' || (deps.board !== undefined && /^\/board(\/|\?|$)/.test(url)));
  setErrorHandler(app, redis, maxBytes);
  if (deps.board) await registerBoard(app, { ...deps.board, basePath: '/board' });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/readyz', { schema: { hide: true } }, async (req, reply) => {
    const result = await readiness({ redis: async () => (await redis.ping()) === 'PONG' });
    return reply.code(result.ready ? 200 : 503).send(result);
  });
  deps.metrics.watchQueues([...queues.values()].map((q) => q.queue));
  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.render());
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(documentRoutes, { config, redis, keys, queues });
  await app.register(reviewRoutes, { desk: reviewDesk(app, deps) });

  const Counts = z.object({ waiting: z.number(), active: z.number(), delayed: z.number(), completed: z.number(), failed: z.number(), prioritized: z.number() });
  const QueueInfo = z.object({ name: z.string(), pipelineVersion: z.string(), prompts: z.record(z.string(), z.string()), counts: Counts });
  // Not awaited: the API starts while Redis is down (it answers 503 until it is back). Workers
  // publish it too, and GET /v1/queues answers from the configuration either way.
  for (const q of queues.values()) void publishPipeline(redis, keys, pipelineInfo(config, q.config)).catch(() => undefined);
  app.get('/v1/queues', {
    schema: {
      summary: 'Every queue: its pipeline version (for canonical job ids, docs/JOB-PAYLOAD.md), prompt versions and job counts by state',
      response: { 200: z.object({ queues: z.array(QueueInfo) }), 401: ErrorBody },
    },
  }, async () => {
    const list = [];
    for (const [name, q] of queues) {
      const c = await q.queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
      const { pipelineVersion, prompts } = pipelineInfo(config, q.config);
      list.push({ name, pipelineVersion, prompts, counts: { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0, completed: c.completed ?? 0, failed: c.failed ?? 0, prioritized: c.prioritized ?? 0 } });
    }
    return { queues: list };
  });

  return app;
}

/** The review desk, writing final records through the process's outputs (or the API's own). */
function reviewDesk(app: FastifyInstance<any, any, any, any, any>, deps: ApiDeps): ReviewDesk {
  const { config, redis, keys } = deps;
  let outputs = deps.outputs;
  if (!outputs) {
    const own = openOutputDeps(config.env, redis, keys, S3Bucket.fromEnv(config.env));
    app.addHook('onClose', async () => {
      await own.close();
      own.s3?.close();
    });
    outputs = own;
  }
  const shared = outputs;
  return new ReviewDesk(config, redis, keys, (queue) => createOutputs(queue, { redis, keys, ...shared }));
}
