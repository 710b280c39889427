import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusFiles } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents');
});
afterAll(() => stack?.close());

describe('worker shutdown', () => {
  it('past the grace period, an in-flight job is handed back to the queue (no attempt used) and finished by the next worker', async () => {
    const outcome = await stack.enqueueFile(corpusFiles().find((f) => f.endsWith('AmazonWebServices.pdf'))!);
    // Wait until the job is in the model stage, then stop with a 1 ms grace.
    for (;;) {
      const job = await stack.queue.getJob(outcome.jobId);
      const stage = (job?.progress as { stage?: string } | undefined)?.stage;
      if (stage === 'classify' || stage === 'extract') break;
      expect(await stack.queue.getJobState(outcome.jobId)).not.toBe('completed');
      await new Promise((r) => setTimeout(r, 10));
    }
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
