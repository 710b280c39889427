import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusFiles } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

/** Resolves once the job is in a model stage (in flight, its lock held and renewed). */
async function inModelStage(stack: Stack, jobId: string): Promise<void> {
  for (;;) {
    const job = await stack.queue.getJob(jobId);
    const stage = (job?.progress as { stage?: string } | undefined)?.stage;
    if (stage === 'classify' || stage === 'extract') return;
    expect(await stack.queue.getJobState(jobId)).not.toBe('completed');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('worker shutdown', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ documents: documentsQueue() }, 'documents');
  });
  afterAll(() => stack?.close());

  it('past the grace period, an in-flight job is handed back to the queue (no attempt used) and finished by the next worker', async () => {
    const outcome = await stack.enqueueFile(corpusFiles().find((f) => f.endsWith('AmazonWebServices.pdf'))!);
    // In the model stage, then stop with a 1 ms grace.
    await inModelStage(stack, outcome.jobId);
    await stack.worker.stop(1);
    const state = await stack.queue.getJobState(outcome.jobId);
    expect(['waiting', 'delayed', 'prioritized']).toContain(state);
    expect((await stack.queue.getJob(outcome.jobId))!.attemptsMade).toBe(0);

    await stack.startAnotherWorker();
    const [status] = await stack.waitAll([outcome]);
    expect(status!.state).toBe('done');
    if (status!.state === 'done') expect(status!.record.attempts).toBe(1);
  });

  it('within the grace period, in-flight jobs finish before the worker stops', async () => {
    const outcome = await stack.enqueueFile(corpusFiles().find((f) => f.endsWith('oyo.pdf'))!);
    while ((await stack.queue.getJobState(outcome.jobId)) !== 'active') await new Promise((r) => setTimeout(r, 10));
    await stack.worker.stop(60_000);
    expect(await stack.queue.getJobState(outcome.jobId)).toBe('completed');
    await stack.startAnotherWorker();
  });
});

describe('a run whose job lock is lost', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Locks renewed every ~0.5 s, stall checks every 5 s: the worker notices the lost lock before a
    // stall check hands the job back.
    stack = await startStack({ documents: documentsQueue({ worker: { lockDurationMs: 2000, stalledIntervalMs: 5000, maxStalledCount: 2 } }) }, 'documents');
  });
  afterAll(() => stack?.close());

  it('stops and delivers nothing; the job comes back through a stall check and the document is done once', async () => {
    const outcome = await stack.enqueueFile(corpusFiles().find((f) => f.endsWith('AmazonWebServices.pdf'))!);
    await inModelStage(stack, outcome.jobId);
    // What a lock that lapsed while Redis was unreachable looks like to the worker.
    await stack.redis.del(stack.queue.toKey(`${outcome.jobId}:lock`));
    const [status] = await stack.waitAll([outcome]);
    expect(status!.state).toBe('done');
    const results = (await stack.worker.metrics.documents.get()).values.map((v) => `${v.labels.result}=${v.value}`).sort();
    expect(results).toEqual(['completed=1', 'lock_lost=1']);
    expect(fs.readdirSync(stack.outbox).filter((f) => f.endsWith('.json'))).toEqual([`${outcome.documentId}.json`]);
  });
});
