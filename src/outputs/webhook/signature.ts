import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Delivery signatures: HMAC-SHA256 over `<delivery id>.<kind>.<timestamp>.<body>`, sent as
 * `x-docsift-signature: sha256=<hex>` beside `x-docsift-delivery`, `x-docsift-kind` and
 * `x-docsift-timestamp`. Signing the delivery id and the timestamp lets a receiver refuse replays
 * (an old timestamp, or an id it has seen); signing the kind keeps a callback from passing as the
 * queue webhook. Webhooks and callbacks have separate secrets. docs/WEBHOOKS.md shows a receiver.
 */
export const SIGNATURE_HEADER = 'x-docsift-signature';
export const TIMESTAMP_HEADER = 'x-docsift-timestamp';
export const DELIVERY_HEADER = 'x-docsift-delivery';
export const KIND_HEADER = 'x-docsift-kind';

export interface Signed {
  deliveryId: string;
  kind: string;
  timestamp: number;
  body: string;
}

export function sign(secret: string, signed: Signed): string {
  return `sha256=${createHmac('sha256', secret).update(`${signed.deliveryId}.${signed.kind}.${signed.timestamp}.${signed.body}`).digest('hex')}`;
}

/** What a receiver runs: true when the signature matches and the timestamp is recent. */
export function verify(secret: string, headers: Record<string, string | string[] | undefined>, body: string, toleranceS = 300, now = Date.now()): boolean {
  const header = (name: string) => (typeof headers[name] === 'string' ? headers[name] : undefined);
  const ts = Number(header(TIMESTAMP_HEADER));
  const deliveryId = header(DELIVERY_HEADER);
  const kind = header(KIND_HEADER);
  const signature = header(SIGNATURE_HEADER);
  if (!Number.isInteger(ts) || !signature || !deliveryId || !kind || Math.abs(now / 1000 - ts) > toleranceS) return false;
  const expected = Buffer.from(sign(secret, { deliveryId, kind, timestamp: ts, body }));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
