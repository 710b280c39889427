import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Keys } from '../../queue/index.js';
import { sign, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './signature.js';

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
});
export type Delivery = z.infer<typeof Delivery>;

export function createDeliveryQueue(redis: Redis, keys: Keys): Queue<Delivery> {
  return new Queue<Delivery>(DELIVERY_QUEUE, {
    connection: redis,
    prefix: keys.bull,
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

/** One POST of the record; throws on a network error, a timeout or a non-2xx answer. */
export async function post(url: string, body: string, secret: string | undefined, timeoutMs: number, documentId: string): Promise<void> {
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'docsift',
    'x-docsift-document-id': documentId,
    [TIMESTAMP_HEADER]: String(timestamp),
  };
  if (secret) headers[SIGNATURE_HEADER] = sign(secret, timestamp, body);
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel().catch(() => undefined);
  if (res.status < 200 || res.status >= 300) throw new Error(`${url} answered HTTP ${res.status}`);
}
