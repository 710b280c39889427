import { assertSafeBind, buildApi } from '../../ingest/http/apiServer.js';
import { boardCredentials } from '../../ingest/http/board.js';
import { openOutputDeps } from '../../outputs/index.js';
import { Metrics } from '../../infra/metrics.js';
import { createRuntime, openAllQueues, untilStopSignal } from '../runtime.js';

/** The HTTP API for every queue in queues/. Stops on SIGTERM/SIGINT after in-flight requests. */
export async function apiCommand(options: { host: string; port: number; board: boolean; boardWrite: boolean }): Promise<number> {
  const rt = createRuntime('stdout');
  assertSafeBind(options.host, rt.config.env.DOCSIFT_API_TOKENS);
  const { redis, queues } = await openAllQueues(rt);
  // One delivery queue and pool for the board and the review desk.
  const outputs = openOutputDeps(rt.config.env, redis, rt.keys, rt.s3);
  const board = options.board && rt.config.env.DOCSIFT_BOARD_USER
    ? { queues: [...[...queues.values()].map((q) => q.queue), outputs.deliveries], readOnly: !options.boardWrite, ...boardCredentials(rt.config.env) }
    : undefined;
  const app = await buildApi({ config: rt.config, redis, keys: rt.keys, queues, logger: rt.logger, metrics: new Metrics(), board, outputs });
  const address = await app.listen({ host: options.host, port: options.port });
  rt.logger.info({ address, queues: [...queues.keys()], auth: rt.config.env.DOCSIFT_API_TOKENS.length > 0, board: board ? `${address}/board` : 'off (set DOCSIFT_BOARD_USER and DOCSIFT_BOARD_PASSWORD)' }, 'api ready');
  await untilStopSignal();
  await app.close();
  for (const q of queues.values()) await q.queue.close();
  await outputs.close();
  await redis.quit();
  return 0;
}
