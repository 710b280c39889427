import path from 'node:path';
import { FolderWatcher } from '../../ingest/folder/index.js';
import { createRuntime, openAllQueues, untilStopSignal } from '../runtime.js';

export interface WatchOptions {
  queue: string;
  poll: boolean;
  stableMs: number;
  intervalMs: number;
  duplicates: 'skip' | 'reprocess';
}

/** Watches DIR/inbox until SIGTERM/SIGINT; see FolderWatcher for the lifecycle. */
export async function watchCommand(dir: string, options: WatchOptions): Promise<number> {
  const rt = createRuntime('stdout');
  const { redis, queues } = await openAllQueues(rt);
  const watcher = new FolderWatcher(rt.config, queues, redis, rt.keys, {
    dir: path.resolve(dir), queue: options.queue, stableMs: options.stableMs, intervalMs: options.intervalMs,
    useEvents: !options.poll, duplicates: options.duplicates,
  }, rt.logger.child({ component: 'watch', dir: path.resolve(dir) }));
  await watcher.start();
  rt.logger.info({ dir: path.resolve(dir), queue: options.queue, poll: options.poll }, 'watching');
  await untilStopSignal();
  await watcher.stop();
  for (const q of queues.values()) await q.queue.close();
  await redis.quit();
  return 0;
}
