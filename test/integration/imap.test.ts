import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { ImapFlow } from 'imapflow';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getQueue, loadConfig, MailAccount, readSecret, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { Enqueuer } from '../../src/ingest/index.js';
import { MailboxIngester, type Ingested } from '../../src/ingest/mail/imapIngester.js';
import { connectRedis, createDocumentQueue, createRedis, keys as makeKeys, RedisDocumentStore, type DocumentQueue, type Keys } from '../../src/queue/index.js';
import { TextExtractor } from '../../src/text/index.js';
import { startImapServer, type ImapServer } from '../helpers/imapServer.js';
import { makeEml } from '../helpers/mail.js';
import { documentsQueue } from '../helpers/stack.js';
import { CORPUS, deleteKeys, makeHome, REDIS_URL, REPO, tempDir, uniquePrefix, until } from '../helpers/testEnv.js';

const PASSWORD = 'k3q9-imap-test-Zt7';
const invoicePdf = fs.readFileSync(path.join(CORPUS, 'AmazonWebServices.pdf'));

let server: ImapServer;
let imap: ImapFlow;
let config: Config;
let redis: Redis;
let queue: DocumentQueue;
let keys: Keys;
let enqueuer: Enqueuer;
let prefix: string;
const extractor = new TextExtractor();
const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', destination: 'stderr' });

beforeAll(async () => {
  server = await startImapServer('ap', PASSWORD);
  imap = await server.client();
  prefix = uniquePrefix('imap');
  config = loadConfig({ DOCSIFT_HOME: makeHome({ documents: documentsQueue() }), DOCSIFT_PREFIX: prefix, REDIS_URL });
  keys = makeKeys(prefix);
  redis = createRedis(REDIS_URL, { forWorker: false });
  await connectRedis(redis, REDIS_URL);
  const queueConfig = getQueue(config, 'documents');
  queue = createDocumentQueue(queueConfig, redis, keys);
  enqueuer = new Enqueuer(config, queueConfig, queue, redis, keys, new RedisDocumentStore(redis, keys, 3600));
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await queue?.obliterate({ force: true });
  await queue?.close();
  if (redis) await deleteKeys(redis, prefix);
  await redis?.quit();
  await extractor.close();
});

/** An account on the test server, as mailboxes.json would give it. */
function account(folder: string, extra: Record<string, unknown> = {}): MailAccount {
  return MailAccount.parse({ name: `ap-${folder.toLowerCase()}`, host: '127.0.0.1', port: server.port, security: 'none', user: 'ap', password: { env: 'TEST_IMAP_PASSWORD' }, folder, pollSeconds: 60, ...extra });
}

function ingester(acct: MailAccount, seen: Ingested[], onEach?: (r: Ingested, self: MailboxIngester) => void): MailboxIngester {
  process.env.TEST_IMAP_PASSWORD = PASSWORD;
  const self: MailboxIngester = new MailboxIngester({
    account: acct, file: 'mailboxes.json', enqueuer, extractor, redis, keys, logger,
    onIngested: (r) => { seen.push(r); onEach?.(r, self); },
  });
  return self;
}

/** Mails from a vendor, each with its own PDF (distinct bytes: one document each), and one newsletter without attachments. */
async function deliver(folder: string, count: number): Promise<void> {
  await imap.mailboxCreate(folder).catch(() => undefined);
  for (let i = 0; i < count; i++) {
    const pdf = Buffer.concat([invoicePdf, Buffer.from(`\n%${folder}-${i}\n`)]);
    await imap.append(folder, await makeEml({ from: 'billing@vendor.test', to: ['ap@example.test'], subject: `Invoice ${folder}-${i}`, text: `Invoice ${i} attached.`, messageId: `<${folder}-${i}@vendor.test>`, attachments: [{ filename: `invoice-${i}.pdf`, content: pdf, contentType: 'application/pdf' }] }));
  }
  await imap.append(folder, await makeEml({ from: 'news@shop.test', to: ['ap@example.test'], subject: 'Our autumn sale', text: 'No attachments here.', messageId: `<${folder}-news@shop.test>` }));
}

async function flagsOf(folder: string): Promise<Map<string, string[]>> {
  const lock = await imap.getMailboxLock(folder);
  try {
    const out = new Map<string, string[]>();
    for await (const m of imap.fetch('1:*', { envelope: true, flags: true })) out.set(m.envelope?.subject ?? '', [...(m.flags ?? [])]);
    return out;
  } finally {
    lock.release();
  }
}

const takenUids = (seen: Ingested[]) => seen.filter((r) => r.status === 'taken').map((r) => r.uid);

describe('docsift mail: IMAP ingestion from a real dovecot on a private loopback port', () => {
  it('two concurrent ingesters take every message exactly once; a rule leaves the newsletter alone; taken mail is marked seen', async () => {
    await deliver('Concurrent', 6);
    const acct = account('Concurrent', { rules: [{ hasAttachment: true, take: 'mail' }] });
    const a: Ingested[] = [];
    const b: Ingested[] = [];
    await Promise.all([ingester(acct, a).runOnce(), ingester(acct, b).runOnce()]);
    const taken = [...takenUids(a), ...takenUids(b)].sort((x, y) => x - y);
    expect(taken).toEqual([1, 2, 3, 4, 5, 6]);
    // Each message made one new e-mail document: nothing was enqueued twice.
    expect([...a, ...b].flatMap((r) => r.outcomes.map((o) => o.status))).toEqual(Array(6).fill('queued'));
    expect([...a, ...b].filter((r) => r.status === 'left').map((r) => r.uid)).toEqual([7]);
    const flags = await flagsOf('Concurrent');
    expect(flags.get('Invoice Concurrent-0')).toContain('\\Seen');
    expect(flags.get('Our autumn sale')).not.toContain('\\Seen');
    const job = await queue.getJob(a.concat(b).find((r) => r.uid === 1)!.outcomes[0]!.jobId);
    expect(job?.data).toMatchObject({ filename: 'Invoice Concurrent-0.eml', source: 'imap:ap-concurrent', detectedType: 'eml', metadata: { imap: { account: 'ap-concurrent', folder: 'Concurrent', uid: 1, messageId: '<Concurrent-0@vendor.test>' } } });
    // A second pass finds nothing new.
    const again: Ingested[] = [];
    await ingester(acct, again).runOnce();
    expect(again).toEqual([]);
  });

  it('an ingester stopped mid-mailbox: the next one takes the rest, none twice', async () => {
    await deliver('Restart', 5);
    const acct = account('Restart', { after: { action: 'flag', flag: '$Docsift' } });
    const first: Ingested[] = [];
    await ingester(acct, first, (r, self) => { if (first.length === 2) void self.stop(); }).runOnce();
    expect(first.map((r) => r.uid)).toEqual([1, 2]);
    const second: Ingested[] = [];
    await ingester(acct, second).runOnce();
    expect(second.map((r) => r.uid)).toEqual([3, 4, 5, 6]);
    expect([...first, ...second].flatMap((r) => r.outcomes.map((o) => o.status))).toEqual(Array(6).fill('queued'));
    expect((await flagsOf('Restart')).get('Invoice Restart-3')).toContain('$Docsift');
  });

  it('a message claimed by an ingester that died is taken by another once the claim expires', async () => {
    await deliver('Crash', 2);
    const acct = account('Crash');
    const validity = String(((await imap.status('Crash', { uidValidity: true })) || { uidValidity: 0n }).uidValidity);
    // What kill -9 leaves behind mid-message: its claim on UID 1, nothing recorded done.
    await redis.set(keys.mailboxClaim(acct.name, 'Crash', validity, 1), 'dead-ingester', 'PX', 1500);
    const first: Ingested[] = [];
    await ingester(acct, first).runOnce();
    expect(first.map((r) => r.uid)).toEqual([2, 3]);
    await until(async () => (await redis.exists(keys.mailboxClaim(acct.name, 'Crash', validity, 1))) === 0, 10_000);
    const second: Ingested[] = [];
    await ingester(acct, second).runOnce();
    expect(second.map((r) => [r.uid, r.outcomes[0]?.status])).toEqual([[1, 'queued']]);
  });

  it('a message larger than the queue allows is refused TOO_LARGE and recorded done, not fetched again', async () => {
    await deliver('Big', 1);
    const small = getQueue(config, 'documents');
    const tight = new Enqueuer(config, { ...small, limits: { ...small.limits, maxBytes: 10_000 } }, queue, redis, keys, new RedisDocumentStore(redis, keys, 3600));
    const seen: Ingested[] = [];
    process.env.TEST_IMAP_PASSWORD = PASSWORD;
    await new MailboxIngester({ account: account('Big'), file: 'mailboxes.json', enqueuer: tight, extractor, redis, keys, logger, onIngested: (r) => seen.push(r) }).runOnce();
    expect(seen.map((r) => [r.uid, r.status])).toEqual([[1, 'refused'], [2, 'taken']]);
    expect(seen[0]!.reason).toMatch(/^TOO_LARGE: \d+ bytes; queue documents allows 10000$/);
    const again: Ingested[] = [];
    await ingester(account('Big'), again).runOnce();
    expect(again).toEqual([]);
  });

  it('take attachments, then move: each PDF is a document of its own and the mail goes to Processed', async () => {
    await deliver('Attach', 2);
    await imap.mailboxCreate('Processed').catch(() => undefined);
    const acct = account('Attach', { rules: [{ from: '@vendor\\.test', take: 'attachments', documentType: 'invoice' }], after: { action: 'move', folder: 'Processed' } });
    const seen: Ingested[] = [];
    await ingester(acct, seen).runOnce();
    expect(seen.map((r) => [r.uid, r.status, r.outcomes.length])).toEqual([[1, 'taken', 1], [2, 'taken', 1], [3, 'left', 0]]);
    const job = await queue.getJob(seen[0]!.outcomes[0]!.jobId);
    expect(job?.data).toMatchObject({ filename: 'invoice-0.pdf', detectedType: 'pdf', documentType: 'invoice' });
    expect([...(await flagsOf('Attach')).keys()]).toEqual(['Our autumn sale']);
    expect([...(await flagsOf('Processed')).keys()]).toEqual(expect.arrayContaining(['Invoice Attach-0', 'Invoice Attach-1']));
  });

  it('follows new mail with IDLE, without waiting for the poll', async () => {
    await imap.mailboxCreate('Idle').catch(() => undefined);
    const seen: Ingested[] = [];
    const live = ingester(account('Idle'), seen);
    await live.start();
    try {
      await imap.append('Idle', await makeEml({ from: 'billing@vendor.test', to: ['ap@example.test'], subject: 'Arrives later', text: 'hello', messageId: '<later@vendor.test>' }));
      // pollSeconds is 60: only IDLE's EXISTS can bring it this soon.
      await until(() => seen.length === 1, 10_000);
      expect(seen[0]!.status).toBe('taken');
    } finally {
      await live.stop();
    }
  });

  it('refuses a placeholder or missing secret, naming the file and key', () => {
    expect(() => readSecret({ env: 'DOCSIFT_TEST_UNSET_VAR' }, { file: 'mailboxes.json', key: 'ap.password' }, {})).toThrow(/mailboxes\.json: ap\.password: names DOCSIFT_TEST_UNSET_VAR, which is not set/);
    expect(() => readSecret({ env: 'P' }, { file: 'mailboxes.json', key: 'ap.password' }, { P: 'change-me' })).toThrow(/placeholder/);
    expect(MailAccount.safeParse({ name: 'x', host: 'imap.example.com', security: 'none', user: 'u', password: { env: 'P' } }).error?.issues[0]?.message).toMatch(/only to a server on this host/);
  });

  it('docsift mail --once reads mailboxes.json; a wrong password fails the start with MAILBOX_UNAVAILABLE', async () => {
    await deliver('Cli', 1);
    const home = makeHome({ documents: documentsQueue() });
    const accounts = (password: string) => JSON.stringify({ accounts: [{ name: 'ap', host: '127.0.0.1', port: server.port, security: 'none', user: 'ap', password: { env: password }, folder: 'Cli' }] });
    const run = (env: Record<string, string>) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(REPO, 'dist', 'src', 'cli', 'main.js'), 'mail', '--once'], { env: { ...process.env, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, REDIS_URL, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
      child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
      child.on('exit', (code) => resolve({ code, out }));
    });
    fs.writeFileSync(path.join(home, 'mailboxes.json'), accounts('CLI_IMAP_PASSWORD'));
    const wrong = await run({ CLI_IMAP_PASSWORD: 'not-the-password-9x' });
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/MAILBOX_UNAVAILABLE: ap: cannot open Cli on 127\.0\.0\.1/);
    const ok = await run({ CLI_IMAP_PASSWORD: PASSWORD });
    expect(ok.code, ok.out).toBe(0);
    const status = await imap.status('Cli', { uidValidity: true });
    expect(await redis.scard(keys.mailboxDone('ap', 'Cli', String(status && status.uidValidity)))).toBe(2);
    expect(await queue.getJob((await queue.getJobs(['waiting'])).find((j) => j.data.filename === 'Invoice Cli-0.eml')?.id ?? 'none')).toBeTruthy();
  });

  it('two docsift mail processes on one mailbox: each message taken by exactly one of them', async () => {
    await deliver('Pair', 10);
    const home = makeHome({ documents: documentsQueue() });
    fs.writeFileSync(path.join(home, 'mailboxes.json'), JSON.stringify({ accounts: [{ name: 'pair', host: '127.0.0.1', port: server.port, security: 'none', user: 'ap', password: { env: 'PAIR_IMAP_PASSWORD' }, folder: 'Pair' }] }));
    const run = () => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(REPO, 'dist', 'src', 'cli', 'main.js'), 'mail', '--once'], { env: { ...process.env, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, REDIS_URL, PAIR_IMAP_PASSWORD: PASSWORD, DOCSIFT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
      child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
      child.on('exit', (code) => resolve({ code, out }));
    });
    const both = await Promise.all([run(), run()]);
    const uids = both.map((r) => r.out.split('\n').filter((l) => l.includes('"msg":"message ingested"')).map((l) => (JSON.parse(l) as { uid: number }).uid));
    for (const r of both) expect(r.code, r.out).toBe(0);
    expect([...uids[0]!, ...uids[1]!].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
});

describe('docsift mail: TLS and XOAUTH2', () => {
  const TOKEN = 'ya29.a0-docsift-test-token-7f3k';
  let secure: ImapServer;
  let introspection: http.Server;
  let cert: string;
  beforeAll(async () => {
    const dir = tempDir('imap-tls');
    cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', cert, '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    fs.chmodSync(path.join(dir, 'key.pem'), 0o644);
    fs.chmodSync(dir, 0o755);
    // The identity provider's token introspection endpoint (RFC 7662), as dovecot's oauth2 passdb asks it.
    introspection = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        const token = new URLSearchParams(body).get('token');
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(token === TOKEN ? { active: true, username: 'ap' } : { active: false }));
      });
    });
    await new Promise<void>((resolve) => introspection.listen(0, '127.0.0.1', resolve));
    const { port } = introspection.address() as { port: number };
    secure = await startImapServer('ap', PASSWORD, { tls: { cert, key: path.join(dir, 'key.pem') }, oauth2IntrospectionUrl: `http://127.0.0.1:${port}/introspect` });
    const c = await secure.client();
    await c.append('INBOX', await makeEml({ from: 'billing@vendor.test', to: ['ap@example.test'], subject: 'Over TLS', text: 'hello', messageId: '<tls@vendor.test>' }));
  }, 60_000);
  afterAll(async () => {
    await secure?.stop();
    introspection?.close();
  });

  const secureAccount = (name: string, extra: Record<string, unknown>) => MailAccount.parse({ name, host: '127.0.0.1', user: 'ap', folder: 'INBOX', ...extra });

  it('TLS from the first byte and STARTTLS, trusting the on-prem CA from caFile; an unknown CA is refused', async () => {
    process.env.TEST_IMAP_PASSWORD = PASSWORD;
    const password = { env: 'TEST_IMAP_PASSWORD' };
    const tls: Ingested[] = [];
    await ingester(secureAccount('tls', { port: secure.tlsPort, security: 'tls', caFile: cert, password }), tls).runOnce();
    expect(tls.map((r) => r.status)).toEqual(['taken']);
    const starttls: Ingested[] = [];
    await ingester(secureAccount('starttls', { port: secure.port, security: 'starttls', caFile: cert, password }), starttls).runOnce();
    expect(starttls.map((r) => r.status)).toEqual(['taken']);
    await expect(ingester(secureAccount('untrusted', { port: secure.tlsPort, security: 'tls', password }), []).runOnce()).rejects.toThrow(/cannot open INBOX on 127\.0\.0\.1: .*(self[- ]signed|certificate)/i);
  });

  it('XOAUTH2 with an access token from a file; a token the provider does not know is refused', async () => {
    const dir = tempDir('imap-token');
    fs.writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
    fs.writeFileSync(path.join(dir, 'stale'), 'ya29.expired-token-0000\n');
    const seen: Ingested[] = [];
    await ingester(secureAccount('oauth', { port: secure.tlsPort, security: 'tls', caFile: cert, oauth2: { accessToken: { file: path.join(dir, 'token') } } }), seen).runOnce();
    expect(seen.map((r) => r.status)).toEqual(['taken']);
    await expect(ingester(secureAccount('stale', { port: secure.tlsPort, security: 'tls', caFile: cert, oauth2: { accessToken: { file: path.join(dir, 'stale') } } }), []).runOnce()).rejects.toThrow(/MAILBOX_UNAVAILABLE|cannot open INBOX/);
  });
});
