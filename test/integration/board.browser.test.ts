import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/ingest/http/apiServer.js';
import { formatJobData } from '../../src/ingest/http/board.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { makeEml } from '../helpers/mail.js';
import { corpusFiles, REPO } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

/** Debian's chromium; never a downloaded browser. .ci/run installs it when missing. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const USER = 'operator';
const PASSWORD = 'board-password-123';
const ARTIFACTS = path.join(REPO, 'test-output');

let stack: Stack;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let documentId: string;

beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_API_TOKENS: 'api-token-0123456789abcdef' });
  app = await buildApi({
    config: stack.config, redis: stack.redis, keys: stack.keys, logger: createLogger({ level: 'silent', destination: 'stderr' }), metrics: new Metrics(),
    queues: new Map([['documents', { config: stack.queueConfig, queue: stack.queue, enqueuer: stack.enqueuer }]]),
    board: { queues: [stack.queue], user: USER, password: PASSWORD, readOnly: true },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const outcome = await stack.enqueueFile(corpusFiles().find((f) => f.endsWith('AzureInterior.pdf'))!);
  await stack.waitAll([outcome]);
  documentId = outcome.documentId;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await stack?.close();
});

describe('Bull Board in real Chromium', () => {
  it('without credentials the board answers 401', async () => {
    expect((await fetch(`${base}/board`)).status).toBe(401);
    expect((await fetch(`${base}/board/api/queues`, { headers: { authorization: `Basic ${Buffer.from(`${USER}:wrong`).toString('base64')}` } })).status).toBe(401);
    const page = await browser.newPage();
    const statuses: number[] = [];
    page.on('response', (r) => statuses.push(r.status()));
    // Headless Chromium has no login dialog: a Basic challenge ends the navigation with an error.
    await expect(page.goto(`${base}/board`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    expect(statuses).toEqual([401]);
    await page.close();
  });

  it('with credentials shows the documents queue and a completed job with its result', async () => {
    const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(`${base}/board/queue/documents?status=completed`);
    await page.getByText(documentId).first().waitFor({ timeout: 30_000 });
    // The Data tab holds the job data and its return value: the result record.
    await page.getByText('returnValue').first().waitFor();
    await page.getByText('classification').first().waitFor();
    // The worker's job logs: text stage and model stage.
    await page.getByText('Logs', { exact: true }).click();
    await page.getByText(/text: pdf, 1 page/).first().waitFor();
    await page.getByText(/prompt \+ \d+ generated tokens/).first().waitFor();
    await page.getByText('Data', { exact: true }).click();
    await page.getByText('returnValue').first().scrollIntoViewIfNeeded();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'board.png'), fullPage: false });
    expect(fs.statSync(path.join(ARTIFACTS, 'board.png')).size).toBeGreaterThan(10_000);
    await context.close();
  });

  it("shows an e-mail's flow: the mail's job with its parts as children", async () => {
    const mail = await stack.enqueuer.enqueue({
      bytes: await makeEml({ from: 'billing@azure.test', to: ['ap@example.test'], subject: 'Azure Interior invoice', text: 'Attached.', messageId: '<board@azure.test>', attachments: [{ filename: 'azure.pdf', content: fs.readFileSync(corpusFiles().find((f) => f.endsWith('oyo.pdf'))!), contentType: 'application/pdf' }] }),
      filename: 'azure.eml', source: 'test',
    });
    await stack.waitAll([mail]);
    const mailId = mail.documentId;
    const basic = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
    const flow = JSON.stringify(await (await fetch(`${base}/board/api/queues/documents/${mailId}/flow`, { headers: basic })).json());
    const children = JSON.parse((await stack.redis.get(stack.keys.result(mailId)))!).children as Array<{ documentId: string }>;
    for (const child of children) expect(flow).toContain(child.documentId);
    const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(`${base}/board/queue/documents/${mailId}`);
    // Bull Board's flow view: the mail's node with "2 done", and a node per part.
    await page.getByText('Job flow').first().waitFor({ timeout: 30_000 });
    await page.getByText(`${children.length} done`).first().waitFor({ timeout: 30_000 });
    await page.getByText('Job flow').first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'board-mail-flow.png'), fullPage: true });
    await context.close();
  });
});

describe('board job data', () => {
  it('hides document bytes and cuts long strings', () => {
    expect(formatJobData({ ref: { kind: 'file', path: '/x' }, bytes: 'JVBERi0x', metadata: { note: 'n'.repeat(5000) } })).toEqual({
      ref: { kind: 'file', path: '/x' }, bytes: '[bytes hidden]', metadata: { note: `${'n'.repeat(2000)}… (5000 chars)` },
    });
  });
});
