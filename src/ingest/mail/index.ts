import type { RedisClient } from '../../queue/connection.js';
import type { Config } from '../../config/index.js';
import { ConfigError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import type { Keys } from '../../queue/index.js';
import { TextExtractor } from '../../text/index.js';
import type { Enqueuer } from '../enqueue.js';
import { MailboxIngester, type Ingested } from './imapIngester.js';

export { MailboxIngester } from './imapIngester.js';
export type { Ingested } from './imapIngester.js';

/**
 * One ingester per account of mailboxes.json (or the one named), each into its queue's enqueuer.
 * once: read each folder and stop; otherwise follow it until stop(). A mailbox that cannot be
 * reached at start fails the start (a wrong host or password should not look like an empty inbox).
 */
export async function startMailboxes(config: Config, enqueuers: ReadonlyMap<string, Enqueuer>, redis: RedisClient, keys: Keys, logger: Logger, options: { account?: string; once?: boolean; onIngested?: (r: Ingested) => void } = {}): Promise<{ stop(): Promise<void> }> {
  const file = config.mailboxes?.file ?? `${config.home}/mailboxes.json`;
  if (!config.mailboxes) throw new ConfigError(file, '(file)', 'does not exist: docsift mail reads the IMAP accounts listed there (docs/MAIL.md)');
  const accounts = config.mailboxes.accounts.filter((a) => !options.account || a.name === options.account);
  if (accounts.length === 0) throw new ConfigError(file, 'accounts', `has no account "${options.account}" (known: ${config.mailboxes.accounts.map((a) => a.name).join(', ')})`);
  const extractor = new TextExtractor();
  const ingesters = accounts.map((account) => new MailboxIngester({
    account, file, enqueuer: enqueuers.get(account.queue)!, extractor, redis, keys, logger: logger.child({ component: 'mail' }), onIngested: options.onIngested,
  }));
  const stop = async () => {
    await Promise.all(ingesters.map((i) => i.stop()));
    await extractor.close();
  };
  try {
    await Promise.all(ingesters.map((i) => (options.once ? i.runOnce() : i.start())));
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
