import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { send } from './errors.js';

/**
 * An Authorization header checked against secrets in constant time (hashing first makes every
 * comparison the same length): bearer tokens, or a board's basic-auth `user:password`.
 */
export function headerMatcher(scheme: 'Bearer' | 'Basic', secrets: readonly string[]): (header: string | undefined) => boolean {
  const digests = secrets.map((t) => createHash('sha256').update(t).digest());
  const pattern = new RegExp(`^${scheme}\\s+(\\S+)$`, 'i');
  return (header) => {
    const match = pattern.exec(header ?? '');
    if (!match) return false;
    const given = createHash('sha256').update(scheme === 'Basic' ? Buffer.from(match[1]!, 'base64').toString('utf8') : match[1]!).digest();
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    return ok;
  };
}

/** Refuses to serve an unauthenticated API beyond this machine. */
export function assertSafeBind(host: string, tokens: readonly string[]): void {
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  if (!loopback && tokens.length === 0) {
    throw new Error(`refusing to listen on ${host} without DOCSIFT_API_TOKENS: anyone on the network could submit documents and read results`);
  }
}

/**
 * Every route needs a bearer token when tokens are configured, except health checks and the
 * board (which has its own basic auth: browsers cannot send bearer tokens to a page).
 */
export function requireBearer(app: FastifyInstance<any, any, any, any, any>, tokens: readonly string[], open: (url: string) => boolean): void {
  if (tokens.length === 0) return;
  const authorized = headerMatcher('Bearer', tokens);
  app.addHook('onRequest', async (req, reply) => {
    if (open(req.url)) return;
    if (!authorized(req.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer');
      return send(reply, 'UNAUTHORIZED', 'a valid bearer token is required (Authorization: Bearer <token>)');
    }
  });
}
