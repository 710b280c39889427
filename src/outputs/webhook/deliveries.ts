import { Queue } from 'bullmq';
import type { RedisClient } from '../../queue/connection.js';
import { z } from 'zod';
import type { Keys } from '../../queue/index.js';
import http from 'node:http';
import https from 'node:https';
import { DocsiftError } from '../../infra/errors.js';
import { assertDestination, checkedLookup, deliveryUrlForLogs, type DeliveryPolicy } from './destination.js';
import { DELIVERY_HEADER, KIND_HEADER, sign, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './signature.js';

/**
 * Webhook and callback deliveries are BullMQ jobs of their own, in one queue for all document
 * queues: a slow or failing receiver then holds no document job and no model sequence, and
 * each delivery retries on its own backoff. The name starts with "_" so no queue file can clash.
 */
export const DELIVERY_QUEUE = '_webhooks';

export const Delivery = z.object({
  documentId: z.string(),
  /** The document queue whose result is delivered (for logs and the dead-letter list). */
  queue: z.string(),
  url: z.string(),
  kind: z.enum(['webhook', 'callback']),
  timeoutMs: z.number().int().default(10_000),
  /** Sent and signed with every attempt and replay, so a receiver can tell a repeat from a new delivery. */
  deliveryId: z.string().optional(),
});
export type Delivery = z.infer<typeof Delivery>;

export function createDeliveryQueue(redis: RedisClient, keys: Keys): Queue<Delivery> {
  return new Queue<Delivery>(DELIVERY_QUEUE, {
    connection: redis,
    prefix: keys.bull(DELIVERY_QUEUE),
    defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 10000 } },
  });
}

/** What an entry of the dead-letter list holds. */
export interface DeadLetter {
  id: string;
  delivery: Delivery;
  error: string;
  attempts: number;
  failedAt: string;
}

/** Why a delivery failed, and whether trying again could help. */
export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';
  constructor(message: string, readonly permanent: boolean) {
    super(message);
  }
}

export interface Outgoing {
  url: string;
  kind: Delivery['kind'];
  deliveryId: string;
  documentId: string;
  body: string;
  /** Signs the delivery when set; webhooks and callbacks each have their own. */
  secret: string | undefined;
  timeoutMs: number;
}

/**
 * One POST of the record, to a destination the policy allows, connecting to the address it
 * checked. Redirects are not followed (a 3xx could send the record anywhere): they fail the
 * delivery for good, as a refused destination does. Network errors, timeouts and other non-2xx
 * answers are worth another attempt.
 */
export async function post(out: Outgoing, policy: DeliveryPolicy): Promise<void> {
  let url: URL;
  try {
    url = assertDestination(policy, out.url);
  } catch (err) {
    throw new DeliveryError((err as Error).message, true);
  }
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'docsift',
    'x-docsift-document-id': out.documentId,
    [DELIVERY_HEADER]: out.deliveryId,
    [KIND_HEADER]: out.kind,
    [TIMESTAMP_HEADER]: String(timestamp),
  };
  if (out.secret) headers[SIGNATURE_HEADER] = sign(out.secret, { deliveryId: out.deliveryId, kind: out.kind, timestamp, body: out.body });
  const request = url.protocol === 'https:' ? https.request : http.request;
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, lookup: checkedLookup(policy), signal: AbortSignal.timeout(out.timeoutMs) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(err instanceof DocsiftError ? new DeliveryError(err.message, true) : err));
    req.end(out.body);
  });
  const shown = deliveryUrlForLogs(out.url);
  if (status >= 300 && status < 400) throw new DeliveryError(`${shown} answered HTTP ${status}; redirects are not followed (give the final URL)`, true);
  if (status < 200 || status >= 300) throw new DeliveryError(`${shown} answered HTTP ${status}`, false);
}
