import type { DeadLetter } from '../../outputs/index.js';
import { createDeliveryQueue, deliveryUrlForLogs } from '../../outputs/index.js';
import { withRedis } from '../runtime.js';

/** Lists webhook and callback deliveries that failed their last attempt. */
export function deadletterListCommand(options: { json: boolean }): Promise<number> {
  return withRedis(async (rt, redis) => {
    const entries = (await redis.lrange(rt.keys.deadLetters, 0, -1)).map((e) => JSON.parse(e) as DeadLetter);
    for (const e of entries) {
      if (options.json) process.stdout.write(JSON.stringify(e) + '\n');
      else process.stdout.write(`${e.id}  ${e.failedAt}  ${e.delivery.kind} ${deliveryUrlForLogs(e.delivery.url)}  ${e.delivery.documentId}  after ${e.attempts} attempt(s): ${e.error}\n`);
    }
    if (!options.json && entries.length === 0) process.stdout.write('no dead-lettered deliveries\n');
    return 0;
  });
}

/** Schedules dead-lettered deliveries again (by id, or all) and removes them from the list. */
export async function deadletterReplayCommand(ids: string[], options: { all: boolean }): Promise<number> {
  if (!options.all && ids.length === 0) throw new Error('name dead-letter ids to replay, or --all');
  return withRedis(async (rt, redis) => {
    const deliveries = createDeliveryQueue(redis, rt.keys);
    let replayed = 0;
    try {
      for (const raw of await redis.lrange(rt.keys.deadLetters, 0, -1)) {
        const entry = JSON.parse(raw) as DeadLetter;
        if (!options.all && !ids.includes(entry.id)) continue;
        await deliveries.add('deliver', entry.delivery, { jobId: `replay-${entry.id}-${Date.now().toString(36)}`, attempts: 3, backoff: { type: 'exponential', delay: 2000 } });
        // Remove only this entry (LREM by value): replays never lose entries added meanwhile.
        await redis.lrem(rt.keys.deadLetters, 1, raw);
        replayed++;
        process.stdout.write(`replaying ${entry.id}: ${deliveryUrlForLogs(entry.delivery.url)} ${entry.delivery.documentId}\n`);
      }
      const missing = options.all ? 0 : ids.length - replayed;
      if (missing > 0) process.stderr.write(`docsift: ${missing} id(s) not in the dead-letter list\n`);
      return missing > 0 ? 1 : 0;
    } finally {
      await deliveries.close();
    }
  });
}
