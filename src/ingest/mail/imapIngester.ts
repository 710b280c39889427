import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { ImapFlow, type FetchMessageObject, type MessageStructureObject } from 'imapflow';
import type { RedisClient } from '../../queue/connection.js';
import { readSecret, type MailAccount } from '../../config/index.js';
import { DocsiftError, toDocsiftError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import type { Keys } from '../../queue/index.js';
import { isMail, sniffFormat, textLimits, type TextExtractor } from '../../text/index.js';
import type { Enqueuer, EnqueueOutcome } from '../enqueue.js';

/** How long one ingester holds a message while it enqueues it; a dead ingester's claim expires, and another takes the message. */
const CLAIM_MS = 5 * 60_000;

/** What became of one message (tests and logs). */
export interface Ingested {
  account: string;
  uid: number;
  /** taken: its documents are enqueued. left: no rule matched (nothing done to it). refused: too large or unreadable; marked done so it is not fetched again. */
  status: 'taken' | 'left' | 'refused';
  outcomes: EnqueueOutcome[];
  reason?: string;
}

export interface IngesterDeps {
  account: MailAccount;
  /** mailboxes.json, named in errors about the account's secrets. */
  file: string;
  enqueuer: Enqueuer;
  extractor: TextExtractor;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  onIngested?: (result: Ingested) => void;
}

/**
 * Reads one IMAP folder into a queue. Every message is taken exactly once across restarts and
 * across several ingesters: its UID is claimed in Redis (SET NX, expiring) before it is fetched,
 * and recorded done (a set per UIDVALIDITY) only after its documents are enqueued and the
 * after-action ran. A crash in between leaves the claim to expire and the message to be taken
 * again, which enqueues nothing new (document ids come from the bytes).
 */
export class MailboxIngester {
  private client: ImapFlow | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private readonly owner = randomBytes(8).toString('hex');
  private readonly log: Logger;

  constructor(private readonly deps: IngesterDeps) {
    this.log = deps.logger.child({ mailbox: deps.account.name, folder: deps.account.folder });
  }

  /** Connects, reads what is there, then follows new mail (IDLE, and a poll every pollSeconds). */
  async start(): Promise<void> {
    await this.connect();
    await this.scan();
    this.timer = setInterval(() => void this.scan(), this.deps.account.pollSeconds * 1000);
  }

  /** Reads the folder once and returns (docsift mail --once). */
  async runOnce(): Promise<void> {
    await this.connect();
    await this.scan();
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.scanning?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.logout().catch(() => client.close());
  }

  private async connect(): Promise<void> {
    const { account, file } = this.deps;
    const auth = account.password
      ? { user: account.user, pass: readSecret(account.password, { file, key: `${account.name}.password` }) }
      : { user: account.user, accessToken: readSecret(account.oauth2!.accessToken, { file, key: `${account.name}.oauth2.accessToken` }) };
    const client = new ImapFlow({
      host: account.host,
      port: account.port ?? (account.security === 'tls' ? 993 : 143),
      secure: account.security === 'tls',
      doSTARTTLS: account.security === 'starttls' ? true : account.security === 'none' ? false : undefined,
      ...(account.caFile ? { tls: { ca: fs.readFileSync(account.caFile) } } : {}),
      auth,
      logger: false,
      disableAutoIdle: !account.idle,
      // IDLE from a second after the last command (imapflow waits 15 s): new mail is read within about a second.
      autoIdleDelay: 1000,
    });
    client.on('error', (err: Error) => this.log.warn({ err: err.message }, 'IMAP connection error'));
    // New mail while idling: read the folder again at once.
    client.on('exists', () => void this.scan());
    client.on('close', () => {
      if (this.stopped || this.client !== client) return;
      this.log.warn('IMAP connection closed; reconnecting on the next poll');
      this.client = undefined;
    });
    try {
      await client.connect();
      await client.mailboxOpen(account.folder);
    } catch (err) {
      client.close();
      throw new DocsiftError('MAILBOX_UNAVAILABLE', `${account.name}: cannot open ${account.folder} on ${account.host}: ${(err as Error).message}`, { cause: err });
    }
    this.client = client;
    this.log.info({ host: account.host, security: account.security, idle: account.idle }, 'mailbox open');
  }

  /** One pass over the folder; a pass asked for while one runs runs once more after it. */
  private scan(): Promise<void> {
    if (this.stopped && !this.client) return Promise.resolve();
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.rescan = false;
        try {
          if (!this.client) await this.connect();
          await this.pass(this.client!);
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'reading the mailbox failed; trying again on the next poll');
        }
      } while (this.rescan && !this.stopped);
    })().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async pass(client: ImapFlow): Promise<void> {
    const { account, redis, keys } = this.deps;
    const mailbox = client.mailbox;
    if (!mailbox) return;
    const validity = String(mailbox.uidValidity);
    const uids = ((await client.search({ all: true }, { uid: true })) || []) as number[];
    if (uids.length === 0) return;
    const doneKey = keys.mailboxDone(account.name, account.folder, validity);
    const done = await redis.smismember(doneKey, ...uids.map(String));
    for (const [i, uid] of uids.entries()) {
      if (this.stopped) return;
      if (done[i]) continue;
      const claim = keys.mailboxClaim(account.name, account.folder, validity, uid);
      if ((await redis.set(claim, this.owner, 'PX', CLAIM_MS, 'NX')) !== 'OK') continue;
      try {
        // Another ingester may have finished it between the read of the set and the claim.
        if (await redis.sismember(doneKey, String(uid))) continue;
        const result = await this.take(client, uid);
        if (result.status === 'taken') await this.afterAction(client, uid);
        await redis.sadd(doneKey, String(uid));
        this.log.info({ uid, status: result.status, documents: result.outcomes.map((o) => o.documentId), reason: result.reason }, 'message ingested');
        this.deps.onIngested?.(result);
      } finally {
        // Released only if still ours (a claim that expired may be someone else's now).
        await redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, claim, this.owner);
      }
    }
  }

  /** Fetches one message and enqueues what its rule takes. */
  private async take(client: ImapFlow, uid: number): Promise<Ingested> {
    const { account, enqueuer } = this.deps;
    const base = { account: account.name, uid, outcomes: [] as EnqueueOutcome[] };
    const head = await client.fetchOne(String(uid), { uid: true, envelope: true, bodyStructure: true, size: true }, { uid: true });
    if (!head) return { ...base, status: 'refused', reason: 'the message is gone' };
    const maxBytes = enqueuer.queueConfig.limits.maxBytes;
    if ((head.size ?? 0) > maxBytes) return { ...base, status: 'refused', reason: `TOO_LARGE: ${head.size} bytes; queue ${enqueuer.queueConfig.name} allows ${maxBytes}` };
    const rule = account.rules.find((r) => matches(r, head));
    if (!rule) return { ...base, status: 'left' };
    // Bounded even if the server's SIZE was wrong: one byte past the limit tells a message that is too large.
    const message = await client.fetchOne(String(uid), { uid: true, source: { maxLength: maxBytes + 1 } }, { uid: true });
    if (!message || !message.source) return { ...base, status: 'refused', reason: 'the message is gone' };
    if (message.source.length > maxBytes) return { ...base, status: 'refused', reason: `TOO_LARGE: more than ${maxBytes} bytes; queue ${enqueuer.queueConfig.name} allows ${maxBytes}` };
    const envelope = head.envelope;
    const metadata = { imap: { account: account.name, folder: account.folder, uid, messageId: envelope?.messageId ?? null, from: envelope?.from?.[0]?.address ?? null, subject: envelope?.subject ?? null } };
    const source = `imap:${account.name}`;
    const documentType = rule.documentType ? { documentType: rule.documentType } : {};
    try {
      if (rule.take === 'mail') {
        return { ...base, status: 'taken', outcomes: [await enqueuer.enqueue({ bytes: message.source, filename: mailFilename(envelope?.subject, uid), source, metadata, ...documentType })] };
      }
      const { mail } = await this.deps.extractor.readMail(message.source, textLimits(enqueuer.queueConfig));
      const outcomes: EnqueueOutcome[] = [];
      for (const a of mail.attachments) {
        const format = sniffFormat(a.bytes);
        if (a.inline || !format || isMail(format)) continue;
        outcomes.push(await enqueuer.enqueue({ bytes: Buffer.from(a.bytes.buffer, a.bytes.byteOffset, a.bytes.length), filename: a.filename, source, metadata, ...documentType }));
      }
      return { ...base, status: 'taken', outcomes };
    } catch (err) {
      const e = toDocsiftError(err);
      // A message that cannot be read or is too large never will be: recorded, not retried.
      if (!e.retryable) return { ...base, status: 'refused', reason: `${e.code}: ${e.message}` };
      throw e;
    }
  }

  private async afterAction(client: ImapFlow, uid: number): Promise<void> {
    const after = this.deps.account.after;
    if (after.action === 'seen') await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
    else if (after.action === 'flag') await client.messageFlagsAdd(String(uid), [after.flag], { uid: true });
    else await client.messageMove(String(uid), after.folder, { uid: true });
  }
}

function matches(rule: MailAccount['rules'][number], message: FetchMessageObject): boolean {
  const from = (message.envelope?.from ?? []).map((a) => `${a.name ?? ''} <${a.address ?? ''}>`).join(', ');
  if (rule.from && !new RegExp(rule.from, 'i').test(from)) return false;
  if (rule.subject && !new RegExp(rule.subject, 'i').test(message.envelope?.subject ?? '')) return false;
  if (rule.hasAttachment !== undefined && hasAttachment(message.bodyStructure) !== rule.hasAttachment) return false;
  return true;
}

function hasAttachment(node: MessageStructureObject | undefined): boolean {
  if (!node) return false;
  if (node.disposition === 'attachment') return true;
  return (node.childNodes ?? []).some(hasAttachment);
}

/** A file name from the subject: what people see in the board and in records. */
function mailFilename(subject: string | undefined, uid: number): string {
  const clean = (subject ?? '').replace(/[^\p{L}\p{N} ._-]+/gu, ' ').replace(/\s+/g, ' ').trim().slice(0, 100);
  return `${clean || `message ${uid}`}.eml`;
}
