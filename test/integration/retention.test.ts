import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReviewDesk, createOutputs, createDeliveryQueue } from '../../src/outputs/index.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

/**
 * Redis holds bounded data: records expire, stored bytes go when their document is final, and
 * the lists that grow with traffic are capped. Read from the real Redis a real worker wrote.
 */
const DAY = 24 * 3600;
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    documents: documentsQueue({ retention: { completed: 100, failed: 100, recordSeconds: 2 * DAY } }),
  }, 'documents', { DOCSIFT_REVIEW_HISTORY_MAX: '2' });
});
afterAll(() => stack?.close());

const text = (s: string) => Buffer.from(s);

describe('retention', () => {
  it('results, failure records and latest-job pointers expire after recordSeconds; bytes go when final', async () => {
    const good = await stack.enqueuer.enqueue({ bytes: text('INVOICE 77 Widgets Ltd total 10.00 EUR'), filename: 'g.txt', source: 'test' });
    const bad = await stack.enqueuer.enqueue({ bytes: text('   \n  '), filename: 'empty.txt', source: 'test' });
    expect(await stack.redis.exists(stack.keys.document(good.sha256))).toBe(1);
    const [done, failed] = await stack.waitAll([good, bad]);
    expect(done!.state).toBe('done');
    expect(failed).toMatchObject({ state: 'failed', code: 'EMPTY_TEXT' });
    for (const key of [stack.keys.result(good.documentId), stack.keys.latestJob(good.documentId), stack.keys.failure(bad.documentId), stack.keys.latestJob(bad.documentId)]) {
      const ttl = await stack.redis.ttl(key);
      expect(ttl, key).toBeGreaterThan(2 * DAY - 120);
      expect(ttl, key).toBeLessThanOrEqual(2 * DAY);
    }
    // Final, so the bytes and their holders are gone, for the done and the failed document alike.
    for (const sha of [good.sha256, bad.sha256]) {
      expect(await stack.redis.exists(stack.keys.document(sha), stack.keys.documentHolders(sha))).toBe(0);
    }
    // BullMQ's finished jobs carry the same age limit.
    const job = await stack.queue.getJob(good.jobId);
    expect(job!.opts.removeOnComplete).toEqual({ count: 100, age: 2 * DAY });
  });

  it('a job that comes back after its bytes were released (its worker died before BullMQ recorded the completion) is done, not DOCUMENT_MISSING', async () => {
    const doc = await stack.enqueuer.enqueue({ bytes: text('INVOICE 79 Widgets Ltd total 14.00 EUR'), filename: 'r.txt', source: 'test' });
    expect((await stack.waitAll([doc]))[0]!.state).toBe('done');
    expect(await stack.redis.exists(stack.keys.document(doc.sha256))).toBe(0);
    // The state a kill -9 in that instant leaves: the record written, the bytes gone, the job waiting again.
    const job = (await stack.queue.getJob(doc.jobId))!;
    await job.retry('completed');
    let state = await job.getState();
    for (let i = 0; i < 200 && state !== 'completed' && state !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      state = await job.getState();
    }
    expect(state).toBe('completed');
    expect(await stack.redis.exists(stack.keys.failure(doc.documentId))).toBe(0);
    expect((await stack.queue.getJob(doc.jobId))!.returnvalue).toMatchObject({ documentId: doc.documentId, jobId: doc.jobId });
  });

  it('bytes two jobs need stay until the second is final', async () => {
    await stack.queue.pause();
    const bytes = text('INVOICE 78 Widgets Ltd total 12.00 EUR');
    const classified = await stack.enqueuer.enqueue({ bytes, filename: 'a.txt', source: 'test' });
    const typed = await stack.enqueuer.enqueue({ bytes, filename: 'a.txt', source: 'test', documentType: 'invoice' });
    expect(typed.documentId).not.toBe(classified.documentId);
    expect(await stack.redis.scard(stack.keys.documentHolders(classified.sha256))).toBe(2);
    await stack.queue.resume();
    const statuses = await stack.waitAll([classified, typed]);
    expect(statuses.map((s) => s.state)).toEqual(['done', 'done']);
    expect(await stack.redis.exists(stack.keys.document(classified.sha256))).toBe(0);
  });

  it('review history keeps the newest DOCSIFT_REVIEW_HISTORY_MAX; a held record has no expiry until decided', async () => {
    const deliveries = createDeliveryQueue(stack.redis, stack.keys);
    const reviewQueue = { ...stack.queueConfig, review: { ...stack.queueConfig.review, enabled: true, sampleRate: 1 } };
    const desk = new ReviewDesk(stack.config, stack.redis, stack.keys, () => createOutputs(reviewQueue, { redis: stack.redis, keys: stack.keys, deliveries }));
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const id = `held-${i}`;
        const record = { documentId: id, queue: 'documents', review: { status: 'pending', reasons: ['sampled'] } };
        await stack.redis.set(stack.keys.result(id), JSON.stringify(record));
        await stack.redis.zadd(stack.keys.reviewPending, i, id);
        ids.push(id);
      }
      for (const id of ids) {
        expect(await stack.redis.ttl(stack.keys.result(id))).toBe(-1);
        await desk.accept(id, 'alice');
        expect(await stack.redis.ttl(stack.keys.result(id))).toBeGreaterThan(2 * DAY - 120);
      }
      expect(await stack.redis.zrange(stack.keys.reviewDone, "0", "-1")).toEqual(['held-1', 'held-2']);
    } finally {
      await deliveries.close();
    }
  });
});
