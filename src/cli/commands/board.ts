import Fastify, { type FastifyBaseLogger } from 'fastify';
import { boardCredentials, registerBoard } from '../../ingest/http/board.js';
import { createDeliveryQueue } from '../../outputs/index.js';
import { createDocumentQueue } from '../../queue/index.js';
import { createRuntime, openRedis, untilStopSignal } from '../runtime.js';

/** Bull Board over every queue of queues/ (and the webhook deliveries), at /board. */
export async function boardCommand(options: { host: string; port: number; write: boolean }): Promise<number> {
  const rt = createRuntime('stdout');
  const credentials = boardCredentials(rt.config.env);
  const redis = await openRedis(rt);
  const queues = [...rt.config.queues.values()].map((q) => createDocumentQueue(q, redis, rt.keys));
  const deliveries = createDeliveryQueue(redis, rt.keys);
  const app = Fastify({ loggerInstance: rt.logger.child({ component: 'board' }) as FastifyBaseLogger });
  await registerBoard(app, { queues: [...queues, deliveries], basePath: '/board', readOnly: !options.write, ...credentials });
  app.get('/', async (_req, reply) => reply.redirect('/board'));
  app.get('/healthz', async () => ({ ok: true }));
  const address = await app.listen({ host: options.host, port: options.port });
  rt.logger.info({ address: `${address}/board`, readOnly: !options.write }, 'board ready');
  await untilStopSignal();
  await app.close();
  for (const q of [...queues, deliveries]) await q.close();
  await redis.quit();
  return 0;
}
