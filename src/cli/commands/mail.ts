import { startMailboxes } from '../../ingest/mail/index.js';
import { createRuntime, openAllQueues, untilStopSignal } from '../runtime.js';

/** Reads the IMAP accounts of mailboxes.json into their queues until SIGTERM/SIGINT, or once with --once. */
export async function mailCommand(options: { account?: string; once: boolean }): Promise<number> {
  const rt = createRuntime('stdout');
  const { redis, queues } = await openAllQueues(rt);
  const enqueuers = new Map([...queues].map(([name, q]) => [name, q.enqueuer]));
  try {
    const running = await startMailboxes(rt.config, enqueuers, redis, rt.keys, rt.logger, { ...(options.account ? { account: options.account } : {}), once: options.once });
    if (!options.once) {
      rt.logger.info({ accounts: rt.config.mailboxes!.accounts.map((a) => a.name) }, 'reading mailboxes');
      await untilStopSignal();
    }
    await running.stop();
  } finally {
    for (const q of queues.values()) await q.queue.close();
    await redis.quit();
  }
  return 0;
}
