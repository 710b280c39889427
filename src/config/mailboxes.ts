import fs from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../infra/errors.js';
import { isPlaceholder } from './env.js';
import { readJson } from './configFile.js';

/** A secret is never written in the file: it names an environment variable or a file holding it. */
const SecretSource = z.union([
  z.object({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name') }).strict(),
  z.object({ file: z.string().startsWith('/', 'an absolute path') }).strict(),
]);
export type SecretSource = z.infer<typeof SecretSource>;

const pattern = z.string().min(1).refine((p) => { try { new RegExp(p, 'i'); return true; } catch { return false; } }, 'is not a valid regular expression');

/** Which messages are taken and how; the first rule a message matches decides. */
const MailRule = z.object({
  /** Matched (case-insensitive regular expression) against the sender's address and name. */
  from: pattern.optional(),
  /** Matched against the subject. */
  subject: pattern.optional(),
  /** true: only messages with an attachment; false: only those without. */
  hasAttachment: z.boolean().optional(),
  /**
   * mail: the whole message as one e-mail document, its body and attachments its parts (docs/FORMATS.md).
   * attachments: each attachment of a supported format as a document of its own; the body is not read.
   */
  take: z.enum(['mail', 'attachments']).default('mail'),
  /** Extract the attachments as this type (a folder of prompts/) instead of classifying them. */
  documentType: z.string().regex(/^[a-z][a-z0-9_]*$/).optional(),
}).strict();

export const MailAccount = z.object({
  /** Names the account in logs, metrics (source imap:<name>) and Redis keys. */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'lowercase letters, digits, - and _'),
  host: z.string().min(1),
  /** Default: 993 with tls, 143 otherwise. */
  port: z.number().int().min(1).max(65535).optional(),
  /** tls: TLS from the first byte (port 993). starttls: upgrade, and refuse a server that cannot. none: loopback only. */
  security: z.enum(['tls', 'starttls', 'none']).default('tls'),
  /** PEM file of the CA that signed the server's certificate, for an on-prem CA. */
  caFile: z.string().startsWith('/', 'an absolute path').optional(),
  user: z.string().min(1),
  /** Password login; or oauth2 for XOAUTH2 (Microsoft 365, Google Workspace). One of the two. */
  password: SecretSource.optional(),
  oauth2: z.object({ accessToken: SecretSource }).strict().optional(),
  folder: z.string().min(1).default('INBOX'),
  /** The queue the documents go to. */
  queue: z.string().min(1).default('documents'),
  /** No rules: every message is taken whole. A message no rule matches is left as it is. */
  rules: z.array(MailRule).default([{ take: 'mail' }]),
  /** What is done to a message once its documents are enqueued: mark it seen, flag it, or move it to a folder. */
  after: z.discriminatedUnion('action', [
    z.object({ action: z.literal('seen') }).strict(),
    z.object({ action: z.literal('flag'), flag: z.string().regex(/^\$?[A-Za-z][A-Za-z0-9_-]*$|^\\Flagged$/).default('\\Flagged') }).strict(),
    z.object({ action: z.literal('move'), folder: z.string().min(1) }).strict(),
  ]).default({ action: 'seen' }),
  /** Wait for new mail with IMAP IDLE when the server offers it; the folder is also read every pollSeconds. */
  idle: z.boolean().default(true),
  pollSeconds: z.number().int().min(5).max(3600).default(60),
}).strict().refine((a) => (a.password === undefined) !== (a.oauth2 === undefined), { message: 'needs exactly one of password and oauth2', path: ['password'] })
  .refine((a) => a.security !== 'none' || /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(a.host), { message: 'none sends the password in clear text: only to a server on this host (127.0.0.1, ::1, localhost); use tls or starttls', path: ['security'] });
export type MailAccount = z.infer<typeof MailAccount>;

export const MailboxesFile = z.object({ accounts: z.array(MailAccount).min(1) }).strict()
  .refine((f) => new Set(f.accounts.map((a) => a.name)).size === f.accounts.length, { message: 'account names must be unique', path: ['accounts'] });
export type Mailboxes = z.infer<typeof MailboxesFile> & { readonly file: string };

/** <home>/mailboxes.json when it exists (docs/MAIL.md); null when the installation reads no mailbox. */
export function loadMailboxes(file: string): Mailboxes | null {
  if (!fs.existsSync(file)) return null;
  return { ...readJson(file, MailboxesFile), file };
}

/** The secret a source names, read when an ingester starts: a missing or placeholder value fails naming its key. */
export function readSecret(source: SecretSource, where: { file: string; key: string }, env: NodeJS.ProcessEnv = process.env): string {
  let value: string | undefined;
  if ('env' in source) {
    value = env[source.env];
    if (value === undefined || value === '') throw new ConfigError(where.file, where.key, `names ${source.env}, which is not set in the environment`);
  } else {
    try {
      const fd = fs.openSync(source.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        const buf = Buffer.alloc(16 * 1024);
        value = buf.subarray(0, fs.readSync(fd, buf)).toString('utf8').trim();
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      throw new ConfigError(where.file, where.key, `names ${source.file}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  if (isPlaceholder(value)) throw new ConfigError(where.file, where.key, 'is a placeholder (change-me, replace-me, …); set the real secret');
  return value;
}
