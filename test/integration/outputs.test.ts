import { spawnSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { createPool, migrate, RedisOutput, sign, verify } from '../../src/outputs/index.js';
import type { ResultRecord } from '../../src/pipeline/index.js';
import { connectRedis, createRedis, keys as makeKeys } from '../../src/queue/index.js';
import { corpusFiles, REDIS_URL, REPO, uniquePrefix, until } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { startReceiver } from '../helpers/receiver.js';

const SECRET = 'webhook-secret-0123456789abcdef';
const DATABASE_URL = process.env.DOCSIFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});


describe('webhook signatures', () => {
  it('verifies what it signs, and refuses a changed body, another secret or an old timestamp', () => {
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    const signed = { deliveryId: 'job-1-webhook-abc', kind: 'webhook', timestamp: ts, body: '{"a":1}' };
    const headers = (over: Record<string, string> = {}) => ({
      'x-docsift-delivery': signed.deliveryId, 'x-docsift-kind': signed.kind, 'x-docsift-timestamp': String(ts), 'x-docsift-signature': sign(SECRET, signed), ...over,
    });
    expect(verify(SECRET, headers(), '{"a":1}', 300, now)).toBe(true);
    expect(verify(SECRET, headers(), '{"a":2}', 300, now)).toBe(false);
    expect(verify('another-secret-0123456789', headers(), '{"a":1}', 300, now)).toBe(false);
    expect(verify(SECRET, headers(), '{"a":1}', 300, now + 3_600_000)).toBe(false);
    // The delivery id and the kind are signed: a callback cannot pass as the webhook, nor one delivery as another.
    expect(verify(SECRET, headers({ 'x-docsift-kind': 'callback' }), '{"a":1}', 300, now)).toBe(false);
    expect(verify(SECRET, headers({ 'x-docsift-delivery': 'job-2-webhook-abc' }), '{"a":1}', 300, now)).toBe(false);
  });
});

describe('Redis output', () => {
  it('stores the record, drops an old failure record and appends the job log line in one script', async () => {
    const prefix = uniquePrefix('redis-output');
    const keys = makeKeys(prefix);
    const redis = createRedis(REDIS_URL, { forWorker: false });
    await connectRedis(redis, REDIS_URL);
    const queue = new Queue('documents', { connection: redis, prefix: keys.bull('documents') });
    try {
      const job = await queue.add('document', { ref: { kind: 'file', path: '/nowhere' } }, { jobId: 'j1' });
      const output = new RedisOutput(redis, keys, 3600);
      const record = { documentId: 'd1', jobId: 'j1' } as unknown as ResultRecord;
      await redis.set(keys.failure('d1'), '{}');
      await output.write(record, { jobLog: { jobKey: `${job.queueQualifiedName}:j1`, line: 'text: text, 1 page(s) | model: invoice' } });
      expect(JSON.parse((await redis.get(keys.result('d1')))!)).toEqual(record);
      const ttl = await redis.ttl(keys.result('d1'));
      expect(ttl).toBeGreaterThan(3500);
      expect(ttl).toBeLessThanOrEqual(3600);
      // A record held for review never expires while it waits for a person; 0 keeps records forever.
      await output.write({ ...record, documentId: 'held', review: { status: 'pending', reasons: ['sampled'] } } as ResultRecord, {});
      expect(await redis.ttl(keys.result('held'))).toBe(-1);
      await new RedisOutput(redis, keys, 0).write({ ...record, documentId: 'kept' }, {});
      expect(await redis.ttl(keys.result('kept'))).toBe(-1);
      expect(await redis.exists(keys.failure('d1'))).toBe(0);
      expect((await queue.getJobLogs('j1')).logs).toEqual(['text: text, 1 page(s) | model: invoice']);
      // Like BullMQ's addLog, no log for a job that is gone (removed while the result was written).
      await output.write({ ...record, documentId: 'd2' }, { jobLog: { jobKey: `${job.queueQualifiedName}:gone`, line: 'x' } });
      expect(await redis.exists(keys.result('d2'))).toBe(1);
      expect(await redis.exists(`${job.queueQualifiedName}:gone:logs`)).toBe(0);
      // Without a line (a long job sent its lines as they came) only the record is written.
      await output.write({ ...record, documentId: 'd3' }, {});
      expect(await redis.exists(keys.result('d3'))).toBe(1);
      expect((await queue.getJobLogs('j1')).logs).toHaveLength(1);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      const left = await redis.keys(`${prefix}:*`);
      if (left.length) await redis.del(...left);
      await redis.quit();
    }
  });
});

describe('webhook output', () => {
  it('POSTs each result with a valid signature, retrying a receiver that fails first', async () => {
    const receiver = await startReceiver(SECRET, { failFirst: 2 });
    try {
      stack = await startStack({ documents: documentsQueue({ outputs: { webhook: { url: receiver.url, attempts: 5, backoffMs: 50 } } }) }, 'documents', { DOCSIFT_WEBHOOK_SECRET: SECRET, DOCSIFT_CALLBACK_HOSTS: '127.0.0.1' });
      const outcome = await stack.enqueueFile(corpusFiles()[0]!);
      await stack.waitAll([outcome]);
      await until(() => receiver.received.length === 1);
      expect(receiver.requests).toBe(3);
      expect(receiver.received[0]).toMatchObject({ documentId: outcome.documentId, signatureValid: true, kind: 'webhook' });
      expect(receiver.received[0]!.body.documentId).toBe(outcome.documentId);
    } finally {
      await receiver.close();
    }
  });

  it('dead-letters a delivery after its last attempt, keeps the result, and replays it from the CLI', async () => {
    const receiver = await startReceiver(SECRET);
    receiver.setStatus(503);
    try {
      stack = await startStack({ documents: documentsQueue({ outputs: { webhook: { url: receiver.url, attempts: 2, backoffMs: 20 } } }) }, 'documents', { DOCSIFT_WEBHOOK_SECRET: SECRET, DOCSIFT_CALLBACK_HOSTS: '127.0.0.1' });
      const outcome = await stack.enqueueFile(corpusFiles()[1]!);
      const [status] = await stack.waitAll([outcome]);
      expect(status!.state).toBe('done'); // a failing output never loses the result
      const s = stack;
      await until(async () => (await s.redis.llen(s.keys.deadLetters)) === 1);
      const env = { ...process.env, REDIS_URL, DOCSIFT_HOME: s.config.home, DOCSIFT_PREFIX: s.config.env.DOCSIFT_PREFIX, DOCSIFT_WEBHOOK_SECRET: SECRET, DOCSIFT_LOG_LEVEL: 'silent' };
      const cli = (args: string[]) => spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), ...args], { env, encoding: 'utf8' });
      const listed = cli(['deadletter', 'list', '--json']);
      expect(listed.status).toBe(0);
      const entry = JSON.parse(listed.stdout.trim());
      expect(entry).toMatchObject({ attempts: 2, delivery: { documentId: outcome.documentId, url: receiver.url, kind: 'webhook' } });
      expect(entry.error).toContain('503');
      receiver.setStatus(200);
      const replayed = cli(['deadletter', 'replay', entry.id]);
      expect(replayed.status, replayed.stderr).toBe(0);
      await until(() => receiver.received.length === 1);
      // A replay is the same delivery: the same id, so a receiver that saw it can tell.
      expect(receiver.received[0]).toMatchObject({ documentId: outcome.documentId, signatureValid: true, deliveryId: entry.delivery.deliveryId });
      expect(await s.redis.llen(s.keys.deadLetters)).toBe(0);
    } finally {
      await receiver.close();
    }
  });
});

describe('PostgreSQL output', () => {
  const schema = `dstest_${Date.now().toString(36)}`;
  const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`;
  let admin: pg.Pool;
  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: DATABASE_URL });
    await admin.query(`CREATE SCHEMA ${schema}`);
  });
  afterAll(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });

  it('db migrate creates the table once; results upsert by document id and pipeline version, never duplicated', async () => {
    const env = { ...process.env, DOCSIFT_DATABASE_URL: url, DOCSIFT_LOG_LEVEL: 'silent' };
    const first = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'db', 'migrate'], { env, encoding: 'utf8' });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain('applied migration(s) 1');
    const pool = createPool(url);
    expect(await migrate(pool)).toEqual([]); // idempotent
    await pool.end();

    stack = await startStack({ documents: documentsQueue({ outputs: { postgres: {} } }) }, 'documents', { DOCSIFT_DATABASE_URL: url });
    const files = corpusFiles().slice(0, 3);
    const outcomes = [];
    for (const f of files) outcomes.push(await stack.enqueueFile(f));
    await stack.waitAll(outcomes);
    // A forced re-run (same pipeline version) and a duplicate enqueue update, never add.
    const again = await stack.enqueueFile(files[0]!, true);
    await stack.waitAll([again]);
    await stack.enqueueFile(files[1]!);
    const rows = (await admin.query(`SELECT document_id, pipeline_version, label, record FROM ${schema}.docsift_results ORDER BY document_id`)).rows;
    expect(rows).toHaveLength(3);
    expect(new Set(rows.map((r) => r.document_id))).toEqual(new Set(outcomes.map((o) => o.documentId)));
    const rerun = rows.find((r) => r.document_id === again.documentId)!;
    expect(rerun.record.jobId).toBe(again.jobId);
  });
});
