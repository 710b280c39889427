import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getQueue, loadConfig } from '../../src/config/index.js';
import { Enqueuer, readResult, waitForDocuments } from '../../src/ingest/index.js';
import { connectRedis, createDocumentQueue, createRedis, keys as makeKeys, RedisDocumentStore, type DocumentQueue } from '../../src/queue/index.js';
import { documentsQueue } from '../helpers/stack.js';
import { corpusFiles, deleteKeys, makeHome, REDIS_URL, tempDir, testModelPath, tokenizerModelPath, uniquePrefix } from '../helpers/testEnv.js';
import { spawnWorker } from '../helpers/workers.js';

/** Two tiers, each a `docsift worker` OS process with its own model; short locks so a killed worker's job comes back in seconds. */
const outbox = tempDir('tiers-outbox');
const locks = { lockDurationMs: 2000, stalledIntervalMs: 1000, maxStalledCount: 2 };
const extract = { pipeline: { mode: 'extract', documentType: 'invoice' } };
const home = makeHome({
  small: documentsQueue({ ...extract, outputs: { outbox: { dir: outbox } }, worker: locks, escalate: { to: 'large', when: { documentTypes: ['invoice'] } } }),
  large: documentsQueue({ ...extract, worker: locks }),
});
const prefix = uniquePrefix('tierproc');
const base = { ...process.env, REDIS_URL, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info' };
const config = loadConfig(base);
const keys = makeKeys(prefix);
const redis = createRedis(REDIS_URL, { forWorker: false });
let small: DocumentQueue;
let large: DocumentQueue;

beforeAll(async () => {
  await connectRedis(redis, REDIS_URL);
  small = createDocumentQueue(getQueue(config, 'small'), redis, keys);
  large = createDocumentQueue(getQueue(config, 'large'), redis, keys);
});
afterAll(async () => {
  for (const q of [small, large]) {
    await q.obliterate({ force: true });
    await q.close();
  }
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('tiers in separate worker processes', () => {
  it('the large tier\'s worker killed -9 mid-escalation: every document ends done once, with its path', async () => {
    const smallWorker = await spawnWorker({ ...base, DOCSIFT_MODEL: testModelPath() }, ['--queue', 'small']);
    const victim = await spawnWorker({ ...base, DOCSIFT_MODEL: tokenizerModelPath('qwen') }, ['--queue', 'large']);
    let replacement: Awaited<ReturnType<typeof spawnWorker>> | undefined;
    try {
      const enqueuer = new Enqueuer(config, getQueue(config, 'small'), small, redis, keys, new RedisDocumentStore(redis, keys, 3600));
      const outcomes = [];
      for (const file of corpusFiles().slice(0, 4)) outcomes.push(await enqueuer.enqueue({ bytes: fs.readFileSync(file), filename: path.basename(file), source: 'test' }));
      const started = Date.now();
      while (!victim.log().includes('document started')) {
        if (Date.now() - started > 120_000) throw new Error(`the large tier never took a job:\n${victim.log()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      victim.process.kill('SIGKILL');
      replacement = await spawnWorker({ ...base, DOCSIFT_MODEL: tokenizerModelPath('qwen') }, ['--queue', 'large']);
      const statuses = await waitForDocuments(small, redis, keys, outcomes, { timeoutMs: 240_000, pollMs: 200, onSettled: () => undefined });
      expect(statuses.filter((s) => s.state !== 'done').map((s) => JSON.stringify(s))).toEqual([]);
      // One final record per document, in the small tier's outbox; each went through both tiers.
      expect(fs.readdirSync(outbox).filter((f) => f.endsWith('.json')).sort()).toEqual(outcomes.map((o) => `${o.documentId}.json`).sort());
      for (const o of outcomes) {
        const record = (await readResult(redis, keys, o.documentId))!;
        expect(record.tiers!.map((t) => t.queue)).toEqual(['small', 'large']);
        expect(record.model.file).toBe(path.basename(tokenizerModelPath('qwen')));
      }
      // The large tier finished each document once, whichever of its workers did.
      const done = [victim, replacement].map((w) => (w.log().match(/"msg":"document done"/g) ?? []).length);
      expect(done.reduce((a, b) => a + b, 0)).toBe(outcomes.length);
      expect((smallWorker.log().match(/"msg":"handed on to the next tier"/g) ?? []).length).toBe(outcomes.length);
    } finally {
      for (const w of [smallWorker, victim, replacement]) await w?.stop('SIGKILL');
    }
  });
});
