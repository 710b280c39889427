import { documentStatus } from '../../ingest/index.js';
import { createRuntime, openQueue } from '../runtime.js';

/** Prints the stored result record of a document; its failure or state when it has none. */
export async function resultCommand(documentId: string, options: { queue: string }): Promise<number> {
  const rt = createRuntime('stderr');
  const { redis, queue } = await openQueue(rt, options.queue);
  try {
    const status = await documentStatus(queue, redis, rt.keys, documentId);
    if (status.state === 'done') {
      process.stdout.write(JSON.stringify(status.record, null, 2) + '\n');
      return 0;
    }
    if (status.state === 'unknown') {
      process.stderr.write(`docsift: no document ${documentId} in queue ${options.queue} (no job, no result, no failure)\n`);
      return 1;
    }
    process.stdout.write(JSON.stringify(status, null, 2) + '\n');
    return status.state === 'failed' ? 1 : 3;
  } finally {
    await queue.close();
    await redis.quit();
  }
}
