import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertSafeBind, buildApi } from '../../src/ingest/http/apiServer.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { makeEml } from '../helpers/mail.js';
import { CORPUS, tempDir } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

const TOKEN = 'test-token-0123456789abcdef';
const roots = tempDir('api-root');
const outside = tempDir('api-outside');
let stack: Stack;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue({ limits: { maxBytes: 200_000 } }) }, 'documents', {
    DOCSIFT_API_TOKENS: `${TOKEN},another-token-abcdefghijkl`, DOCSIFT_API_ROOTS: roots, DOCSIFT_API_MAX_FILES: '5', DOCSIFT_API_MAX_REQUEST_BYTES: '500000',
  });
  app = await buildApi({
    config: stack.config, redis: stack.redis, keys: stack.keys, logger: createLogger({ level: 'silent', destination: 'stderr' }), metrics: new Metrics(),
    queues: new Map([['documents', { config: stack.queueConfig, queue: stack.queue, enqueuer: stack.enqueuer }]]),
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  fs.copyFileSync(path.join(CORPUS, 'oyo.pdf'), path.join(roots, 'oyo.pdf'));
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'not for the API');
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(roots, 'link.txt'));
});
afterAll(async () => {
  await app?.close();
  await stack?.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };
async function api(method: string, url: string, init: { body?: FormData | string; json?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...auth, ...init.headers };
  let body = init.body;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const res = await fetch(base + url, { method, headers, ...(body ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function upload(files: Array<[string, Buffer]>, fields: Record<string, string> = {}): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const [name, bytes] of files) form.append('file', new Blob([new Uint8Array(bytes)]), name);
  return form;
}

async function waitDone(id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 600; i++) {
    const s = await api('GET', `/v1/documents/${id}`);
    if (s.body.state === 'done' || s.body.state === 'failed') return s.body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timeout');
}

describe('HTTP API', () => {
  it('needs a valid bearer token on every route but /healthz; without one nothing happens', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const before = await stack.queue.getJobCounts();
    for (const [method, url] of [['GET', '/v1/queues'], ['GET', '/openapi.json'], ['GET', '/v1/documents/x'], ['POST', '/v1/documents']]) {
      const res = await fetch(base + url, { method, headers: { authorization: 'Bearer wrong-token-0123456789' } });
      expect(res.status, url).toBe(401);
      expect((await fetch(base + url, { method })).status).toBe(401);
    }
    const res = await fetch(`${base}/v1/documents`, { method: 'POST', body: upload([['a.txt', Buffer.from('Invoice 1')]]) });
    expect(res.status).toBe(401);
    expect(await stack.queue.getJobCounts()).toEqual(before);
    expect((await api('GET', '/v1/queues', { headers: { authorization: 'Bearer another-token-abcdefghijkl' } })).status).toBe(200);
  });

  it('takes a multipart upload of several files, reports status, serves the result, and knows duplicates', async () => {
    const a = fs.readFileSync(path.join(CORPUS, 'saeco.pdf'));
    const b = Buffer.from('RECEIPT Cafe Nord 2x espresso 5.00 EUR');
    const res = await api('POST', '/v1/documents', { body: upload([['saeco.pdf', a], ['r.txt', b]], { metadata: '{"erpId":"77"}' }) });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.documents).toHaveLength(2);
    const [first] = res.body.documents;
    expect(first).toMatchObject({ filename: 'saeco.pdf', queue: 'documents', status: 'queued', statusUrl: `/v1/documents/${first.documentId}` });
    const status = await waitDone(first.documentId);
    expect(status).toMatchObject({ state: 'done', progress: 100, error: null, resultUrl: `/v1/documents/${first.documentId}/result` });
    const result = await api('GET', first.resultUrl);
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ documentId: first.documentId, source: 'api', metadata: { erpId: '77' }, filename: 'saeco.pdf' });
    const again = await api('POST', '/v1/documents', { body: upload([['copy.pdf', a]]) });
    expect(again.status).toBe(202);
    expect(again.body.documents[0].documentId).toBe(first.documentId);
    expect(again.body.documents[0].status).toBe('done'); // after completion, as API.md says
  });

  it('an uploaded e-mail is waiting at stage "parts" until its attachments are done; its result lists them', async () => {
    const eml = await makeEml({ from: 'billing@saeco.test', to: ['ap@example.test'], subject: 'Saeco invoice', text: 'See attachment.', messageId: '<api-1@saeco.test>', attachments: [{ filename: 'saeco.pdf', content: fs.readFileSync(path.join(CORPUS, 'oyo.pdf')), contentType: 'application/pdf' }] });
    const res = await api('POST', '/v1/documents', { body: upload([['saeco.eml', eml]]) });
    expect(res.status).toBe(202);
    const id = res.body.documents[0].documentId;
    let sawParts = false;
    for (let i = 0; i < 600 && !sawParts; i++) {
      const s = await api('GET', `/v1/documents/${id}`);
      if (s.body.state === 'waiting' && s.body.stage === 'parts') sawParts = true;
      if (s.body.state === 'done') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await waitDone(id)).state).toBe('done');
    const result = await api('GET', `/v1/documents/${id}/result`);
    expect(result.body).toMatchObject({ classification: { label: 'mail', method: 'container' }, mail: { subject: 'Saeco invoice' }, text: { format: 'eml' } });
    expect(result.body.children.map((c: { role: string; status: string }) => [c.role, c.status])).toEqual([['body', 'done'], ['attachment', 'done']]);
    const part = await api('GET', `/v1/documents/${result.body.children[1].documentId}/result`);
    expect(part.body).toMatchObject({ filename: 'saeco.pdf', parent: id, source: 'api' });
    // Its parts take the model a second or more; looks 20 ms apart see the mail waiting for them.
    expect(sawParts).toBe(true);
  });

  it('enqueues a file by path under an allowed root, and refuses traversal, outside paths and symlinks out', async () => {
    const ok = await api('POST', '/v1/documents', { json: { path: 'oyo.pdf' } });
    expect(ok.status).toBe(202);
    expect((await waitDone(ok.body.documents[0].documentId)).state).toBe('done');
    for (const bad of ['../' + path.basename(outside) + '/secret.txt', path.join(outside, 'secret.txt'), '/etc/passwd', 'link.txt', `${roots}/../${path.basename(outside)}/secret.txt`]) {
      const res = await api('POST', '/v1/documents', { json: { path: bad } });
      expect(res.status, bad).toBe(403);
      expect(res.body.error.code).toBe('PATH_NOT_ALLOWED');
    }
  });

  it('caps files and bytes per request (413) and refuses a bad filename (400), leaving nothing stored', async () => {
    const stored = async () => (await stack.redis.keys(`${stack.keys.document('*')}`)).length + (await stack.redis.keys(stack.keys.upload('*'))).length;
    const before = await stored();
    const six = await api('POST', '/v1/documents', { body: upload(Array.from({ length: 6 }, (_, i) => [`f${i}.txt`, Buffer.from(`Invoice ${i} of six`)] as [string, Buffer])) });
    expect(six.status).toBe(413);
    expect(six.body.error).toMatchObject({ code: 'TOO_LARGE', message: expect.stringContaining('DOCSIFT_API_MAX_FILES') });
    const heavy = await api('POST', '/v1/documents', { body: upload([1, 2, 3].map((i) => [`h${i}.txt`, Buffer.alloc(190_000, 48 + i)] as [string, Buffer])) });
    expect(heavy.status).toBe(413);
    expect(heavy.body.error.message).toContain('DOCSIFT_API_MAX_REQUEST_BYTES');
    const longName = await api('POST', '/v1/documents', { body: upload([['a'.repeat(1100) + '.pdf', Buffer.from('Invoice with a long name')]]) });
    expect(longName.status).toBe(400);
    expect(longName.body.error.message).toContain('filename');
    const control = await api('POST', '/v1/documents', { body: upload([['bad\u0007name.txt', Buffer.from('Invoice with a bell')]]) });
    expect(control.status).toBe(400);
    expect(await stored()).toBe(before);
    // Within the caps the same request shape goes through, and the upload key is renamed, not copied.
    const five = await api('POST', '/v1/documents', { body: upload(Array.from({ length: 5 }, (_, i) => [`ok${i}.txt`, Buffer.from(`Invoice ${i} of five ${Date.now()}`)] as [string, Buffer])) });
    expect(five.status).toBe(202);
    expect(await stack.redis.keys(stack.keys.upload('*'))).toEqual([]);
  });

  it('cancels a waiting document and refuses to cancel a finished one', async () => {
    await stack.queue.pause();
    try {
      const res = await api('POST', '/v1/documents', { body: upload([['w.txt', Buffer.from('PURCHASE ORDER 5531 waiting')]]) });
      const id = res.body.documents[0].documentId;
      expect((await api('GET', `/v1/documents/${id}`)).body.state).toBe('waiting');
      const del = await api('DELETE', `/v1/documents/${id}`);
      expect(del).toMatchObject({ status: 200, body: { documentId: id, state: 'cancelled' } });
      expect((await api('GET', `/v1/documents/${id}`)).status).toBe(404);
    } finally {
      await stack.queue.resume();
    }
    const done = await api('POST', '/v1/documents', { body: upload([['d.txt', Buffer.from('Invoice 9 total 3 EUR')]]) });
    await waitDone(done.body.documents[0].documentId);
    expect((await api('DELETE', `/v1/documents/${done.body.documents[0].documentId}`)).status).toBe(409);
  });

  it('lists queue counts and serves OpenAPI generated from the route schemas', async () => {
    const queues = await api('GET', '/v1/queues');
    expect(queues.body.queues[0]).toMatchObject({ name: 'documents', counts: { waiting: expect.any(Number), completed: expect.any(Number) } });
    // The pipeline version a foreign producer needs for canonical job ids (docs/JOB-PAYLOAD.md).
    expect(queues.body.queues[0].pipelineVersion).toBe(stack.enqueuer.pipelineVersion);
    expect(queues.body.queues[0].prompts).toMatchObject({ classify: '1', invoice: '1' });
    const spec = await api('GET', '/openapi.json');
    expect(spec.body.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(['/v1/documents', '/v1/documents/{id}', '/v1/documents/{id}/result', '/v1/queues']));
    expect(JSON.stringify(spec.body.paths['/v1/documents'].post)).toContain('priority');
    const docs = await fetch(`${base}/docs/`, { headers: auth });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('swagger');
  });

  it('serves /metrics behind the token and /readyz without it', async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const metrics = await fetch(`${base}/metrics`, { headers: auth });
    expect(await metrics.text()).toMatch(/^docsift_jobs\{queue="documents",state="completed"\} \d+/m);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { redis: true } });
  });

  it('refuses to start on a non-loopback address without tokens', () => {
    expect(() => assertSafeBind('0.0.0.0', [])).toThrow(/DOCSIFT_API_TOKENS/);
    expect(() => assertSafeBind('127.0.0.1', [])).not.toThrow();
    expect(() => assertSafeBind('0.0.0.0', [TOKEN])).not.toThrow();
  });
});
