import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures: HMAC-SHA256 with the shared secret over `<timestamp>.<body>`, sent as
 * `x-docsift-signature: sha256=<hex>` with `x-docsift-timestamp: <unix seconds>`. Signing the
 * timestamp lets a receiver refuse replays of an old delivery. docs/WEBHOOKS.md shows a receiver.
 */
export const SIGNATURE_HEADER = 'x-docsift-signature';
export const TIMESTAMP_HEADER = 'x-docsift-timestamp';

export function sign(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What a receiver runs: true when the signature matches and the timestamp is recent. */
export function verify(secret: string, timestamp: string | undefined, body: string, signature: string | undefined, toleranceS = 300, now = Date.now()): boolean {
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || !signature || Math.abs(now / 1000 - ts) > toleranceS) return false;
  const expected = Buffer.from(sign(secret, ts, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
