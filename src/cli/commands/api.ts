import { assertSafeBind, buildApi } from '../../ingest/http/apiServer.js';
import { Metrics } from '../../infra/metrics.js';
import { createRuntime, openAllQueues } from '../runtime.js';

/** The HTTP API for every queue in queues/. Stops on SIGTERM/SIGINT after in-flight requests. */
export async function apiCommand(options: { host: string; port: number }): Promise<number> {
  const rt = createRuntime('stdout');
  assertSafeBind(options.host, rt.config.env.DOCSIFT_API_TOKENS);
  const { redis, queues } = await openAllQueues(rt);
  const app = await buildApi({ config: rt.config, redis, keys: rt.keys, queues, logger: rt.logger, metrics: new Metrics() });
  const address = await app.listen({ host: options.host, port: options.port });
  rt.logger.info({ address, queues: [...queues.keys()], auth: rt.config.env.DOCSIFT_API_TOKENS.length > 0 }, 'api ready');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await app.close();
  for (const q of queues.values()) await q.queue.close();
  await redis.quit();
  return 0;
}
