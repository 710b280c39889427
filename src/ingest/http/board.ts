import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { headerMatcher } from './auth.js';
import { send } from './errors.js';

export interface BoardOptions {
  queues: ReadonlyArray<Queue<any, any, any>>;
  /** Where the board is mounted, e.g. /board. */
  basePath: string;
  user: string;
  password: string;
  /** No retries, removals, promotions or pauses from the board. */
  readOnly: boolean;
}

/** Strings longer than this are cut in the board, so a large field never freezes the UI. */
const MAX_SHOWN = 2000;
/** Keys a plain-BullMQ producer might (wrongly) fill with document bytes. */
const BYTE_KEYS = new Set(['bytes', 'content', 'data', 'file', 'buffer', 'base64']);

/** What the board shows of job data: everything but bytes, with long strings cut. */
export function formatJobData(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}… (${value.length} chars)` : value;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => formatJobData(v, depth + 1));
  if (value && typeof value === 'object') {
    if (depth > 6) return '[nested]';
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, BYTE_KEYS.has(k) && typeof v !== 'number' ? '[bytes hidden]' : formatJobData(v, depth + 1)]));
  }
  return value;
}

/**
 * Bull Board over the given queues, behind basic auth (Bull Board has none of its own), in an
 * encapsulated plugin so its auth applies to its routes only.
 */
export async function registerBoard(app: FastifyInstance<any, any, any, any, any>, options: BoardOptions): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(options.basePath);
  createBullBoard({
    queues: options.queues.map((q) => {
      const adapter = new BullMQAdapter(q, { readOnlyMode: options.readOnly, allowRetries: !options.readOnly });
      adapter.setFormatter('data', (data: unknown) => formatJobData(data));
      return adapter;
    }),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'docsift' } },
  });
  const authorized = headerMatcher('Basic', [`${options.user}:${options.password}`]);
  await app.register(async (scope) => {
    scope.addHook('onRequest', async (req, reply) => {
      if (!authorized(req.headers.authorization)) {
        return send(reply.header('www-authenticate', 'Basic realm="docsift board"'), 'UNAUTHORIZED', 'board credentials required');
      }
    });
    await scope.register(serverAdapter.registerPlugin(), { prefix: options.basePath });
  });
}

/** The board's credentials from config, or why it cannot be served. */
export function boardCredentials(env: { DOCSIFT_BOARD_USER?: string | undefined; DOCSIFT_BOARD_PASSWORD?: string | undefined }): { user: string; password: string } {
  if (!env.DOCSIFT_BOARD_USER || !env.DOCSIFT_BOARD_PASSWORD) {
    throw new Error('the board needs DOCSIFT_BOARD_USER and DOCSIFT_BOARD_PASSWORD (basic auth); Bull Board has no authentication of its own');
  }
  return { user: env.DOCSIFT_BOARD_USER, password: env.DOCSIFT_BOARD_PASSWORD };
}
