import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { QueueConfig } from '../config/index.js';
import type { ResultRecord } from '../pipeline/index.js';
import type { OutputContext, ResultOutput } from './output.js';
import type { Delivery } from './webhook/deliveries.js';

/** Default retry policy of per-document callback URLs (queue webhooks set their own). */
const CALLBACK_RETRY = { attempts: 8, backoffMs: 2000, timeoutMs: 10_000 };

/**
 * Schedules deliveries of the record: to the queue's webhook and to the document's callback URL.
 * The job id ties a delivery to the document job that produced it, so a retried document job
 * schedules each delivery once.
 */
export class WebhookOutput implements ResultOutput {
  readonly name = 'webhook';
  constructor(private readonly queue: QueueConfig, private readonly deliveries: Queue<Delivery>) {}

  async write(record: ResultRecord, context: OutputContext): Promise<void> {
    const targets: Array<{ url: string; kind: Delivery['kind']; attempts: number; backoffMs: number; timeoutMs: number }> = [];
    if (this.queue.outputs.webhook) targets.push({ ...this.queue.outputs.webhook, kind: 'webhook' });
    if (context.callbackUrl) targets.push({ url: context.callbackUrl, kind: 'callback', ...CALLBACK_RETRY });
    for (const t of targets) {
      const urlHash = createHash('sha256').update(t.url).digest('hex').slice(0, 12);
      const deliveryId = `${record.jobId}-${t.kind}-${urlHash}`;
      await this.deliveries.add('deliver', {
        documentId: record.documentId, queue: record.queue, url: t.url, kind: t.kind, timeoutMs: t.timeoutMs, deliveryId,
      }, {
        jobId: deliveryId,
        attempts: t.attempts,
        backoff: { type: 'exponential', delay: t.backoffMs },
      });
    }
  }
}
