import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/ingest/http/apiServer.js';
import { readResult } from '../../src/ingest/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { corpusFiles, REDIS_URL, REPO, until } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { startReceiver } from '../helpers/receiver.js';

const CALLBACK_SECRET = 'callback-secret-0123456789abcdef';
let stack: Stack;
let app: FastifyInstance;
let base: string;
beforeAll(async () => {
  // sampleRate 1: every document is held, whatever the (random) test model writes.
  stack = await startStack({ documents: documentsQueue({ pipeline: { mode: 'extract', documentType: 'invoice' }, review: { enabled: true, sampleRate: 1 } }) }, 'documents', {
    DOCSIFT_CALLBACK_HOSTS: '127.0.0.1', DOCSIFT_CALLBACK_SECRET: CALLBACK_SECRET,
  });
  app = await buildApi({
    config: stack.config, redis: stack.redis, keys: stack.keys, logger: createLogger({ level: 'silent', destination: 'stderr' }), metrics: new Metrics(),
    queues: new Map([['documents', { config: stack.queueConfig, queue: stack.queue, enqueuer: stack.enqueuer }]]),
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await stack?.close();
});

const outboxHas = (id: string) => fs.existsSync(path.join(stack.outbox, `${id}.json`));
const post = async (url: string, body: unknown) => {
  const res = await fetch(base + url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

describe('review', () => {
  it('holds results in Redis only until a person accepts or corrects them; then they are final in every output', async () => {
    const [a, b] = [await stack.enqueueFile(corpusFiles()[0]!), await stack.enqueueFile(corpusFiles()[1]!)];
    await stack.waitAll([a, b]);
    for (const o of [a, b]) {
      const held = await readResult(stack.redis, stack.keys, o.documentId);
      expect(held!.review).toMatchObject({ status: 'pending' });
      expect(held!.review!.reasons.join()).toContain('sampled');
      expect(outboxHas(o.documentId)).toBe(false);
    }
    const list = await (await fetch(`${base}/v1/reviews`)).json() as { reviews: Array<{ documentId: string }> };
    expect(list.reviews.map((r) => r.documentId).sort()).toEqual([a.documentId, b.documentId].sort());

    // Accept over the API.
    const accepted = await post(`/v1/reviews/${a.documentId}/accept`, { by: 'alice' });
    expect(accepted.status).toBe(200);
    expect(accepted.body.review).toMatchObject({ status: 'accepted', by: 'alice' });
    expect(outboxHas(a.documentId)).toBe(true);
    const again = await post(`/v1/reviews/${a.documentId}/accept`, { by: 'alice' });
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'NOT_PENDING_REVIEW' } } });
    expect(await post(`/v1/reviews/nope/accept`, { by: 'alice' })).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });

    // Correct from the CLI; an invalid correction is refused.
    const env = { ...process.env, REDIS_URL, DOCSIFT_HOME: stack.config.home, DOCSIFT_PREFIX: stack.config.env.DOCSIFT_PREFIX, DOCSIFT_LOG_LEVEL: 'silent' };
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), ...args], { env, encoding: 'utf8' });
    expect(cli(['review', 'list']).stdout).toContain(b.documentId);
    const bad = cli(['review', 'correct', b.documentId, '--set', 'amount="lots"', '--by', 'bob']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('schema');
    const fixed = cli(['review', 'correct', b.documentId, '--set', 'amount=279.84', '--set', 'currency=USD', '--by', 'bob']);
    expect(fixed.status, fixed.stderr).toBe(0);
    const final = await readResult(stack.redis, stack.keys, b.documentId);
    expect(final!.fields).toMatchObject({ amount: 279.84, currency: 'USD' });
    expect(final!.review).toMatchObject({ status: 'corrected', by: 'bob', changes: [{ field: 'amount', to: 279.84 }, { field: 'currency', to: 'USD' }] });
    const outbox = JSON.parse(fs.readFileSync(path.join(stack.outbox, `${b.documentId}.json`), 'utf8'));
    expect(outbox.fields.amount).toBe(279.84);
    expect(cli(['review', 'list']).stdout).toContain('nothing waiting for review');

    // Both reviewed documents become fine-tuning examples with the final fields as the answer.
    const exported = cli(['export-training', '--since', '2020-01-01']);
    expect(exported.status, exported.stderr).toBe(0);
    const examples = exported.stdout.trim().split('\n').map((l) => JSON.parse(l) as { messages: Array<{ role: string; content: string }>; metadata: Record<string, string> });
    expect(examples).toHaveLength(2);
    const corrected = examples.find((e) => e.metadata.documentId === b.documentId)!;
    expect(corrected.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
    expect(JSON.parse(corrected.messages[2]!.content)).toMatchObject({ amount: 279.84, currency: 'USD' });
    expect(corrected.messages[1]!.content).toContain('<document>');
    expect(corrected.metadata).toMatchObject({ review: 'corrected', by: 'bob', documentType: 'invoice' });
    expect(cli(['export-training', '--since', '2999-01-01']).stdout).toBe('');
  });

  it('two people accepting at once: one decision is final, the other gets 409; the held callback goes out with the final record', async () => {
    const receiver = await startReceiver(CALLBACK_SECRET);
    try {
      const outcome = await stack.enqueuer.enqueue({ bytes: Buffer.from(`INVOICE 99 Widgets Ltd 10.00 EUR ${Date.now()}`), filename: 'r.txt', source: 'test', callbackUrl: receiver.url });
      await stack.waitAll([outcome]);
      expect((await readResult(stack.redis, stack.keys, outcome.documentId))!.review).toMatchObject({ status: 'pending' });
      await new Promise((r) => setTimeout(r, 300));
      expect(receiver.requests).toBe(0); // nothing leaves while a person has not decided
      const answers = await Promise.all(['alice', 'bob', 'carol'].map((by) => post(`/v1/reviews/${outcome.documentId}/accept`, { by })));
      expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409]);
      for (const a of answers.filter((x) => x.status === 409)) expect(a.body.error.code).toBe('NOT_PENDING_REVIEW');
      const winner = answers.find((a) => a.status === 200)!.body.review.by;
      await until(() => receiver.received.length === 1);
      expect(receiver.received[0]).toMatchObject({ documentId: outcome.documentId, kind: 'callback', signatureValid: true });
      expect(receiver.received[0]!.body.review).toMatchObject({ status: 'accepted', by: winner });
      await new Promise((r) => setTimeout(r, 300));
      expect(receiver.requests).toBe(1);
      expect(await stack.redis.exists(stack.keys.reviewCallback(outcome.documentId))).toBe(0);
    } finally {
      await receiver.close();
    }
  });
});
