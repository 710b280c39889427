import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { connectRedis, createRedis, keysFor, S3Bucket, storedRef } from '../../src/queue/index.js';
import { freePort } from '../helpers/redisServer.js';
import { startS3Server } from '../helpers/s3Server.js';
import { documentsQueue } from '../helpers/stack.js';
import { corpusFiles, deleteKeys, makeHome, REDIS_URL, REPO, tempDir, testModelPath, uniquePrefix, until } from '../helpers/testEnv.js';
import { spawnDocsift, spawnWorker } from '../helpers/workers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BIN = path.join(REPO, 'dist/src/cli/main.js');
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

let s3: Awaited<ReturnType<typeof startS3Server>>;

/** A worker and docsift api on this environment, and a Redis connection; all ended (and the prefix's keys deleted) after the file. */
async function workerAndApi(env: NodeJS.ProcessEnv, prefix: string) {
  const redis = createRedis(REDIS_URL, { forWorker: false });
  await connectRedis(redis, REDIS_URL);
  cleanups.push(async () => {
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });
  const worker = await spawnWorker(env);
  cleanups.push(() => worker.stop('SIGKILL'));
  const port = await freePort();
  const api = await spawnDocsift(['api', '--port', String(port), '--no-board'], env, 'api ready');
  cleanups.push(() => api.stop('SIGKILL'));
  return { redis, port, worker };
}
beforeAll(async () => {
  s3 = await startS3Server('docsift-test');
  cleanups.push(() => s3.stop());
});

describe('documents in S3-compatible storage', () => {
  it('the bucket: large bodies go up in parts, reads are bounded, a missing object and an unreachable server have their codes', async () => {
    const bucket = S3Bucket.fromEnv(loadConfig({ DOCSIFT_HOME: REPO, ...s3.env }).env)!;
    cleanups.push(async () => bucket.close());
    const sent: string[] = [];
    bucket.client.middlewareStack.add((next, context) => (args) => {
      sent.push(context.commandName as string);
      return next(args);
    }, { step: 'initialize' });
    const big = Buffer.alloc(20 * 1024 * 1024, 7);
    const key = bucket.documentKey(createHash('sha256').update(big).digest('hex'));
    await bucket.put(key, big);
    // 20 MiB in 8 MiB parts: a multipart upload of 3.
    expect(sent).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);
    sent.length = 0;
    await bucket.put(bucket.documentKey('1'.repeat(64)), Buffer.from('small'));
    expect(sent).toEqual(['PutObjectCommand']);
    expect((await bucket.get(key, 1000)).length).toBe(1001);
    expect((await bucket.get(key, big.length)).equals(big)).toBe(true);
    await expect(bucket.get(bucket.documentKey('0'.repeat(64)), 10)).rejects.toMatchObject({ code: 'DOCUMENT_MISSING' });
    await bucket.delete(key);
    await expect(bucket.get(key, 10)).rejects.toMatchObject({ code: 'DOCUMENT_MISSING' });
    const closed = S3Bucket.fromEnv(loadConfig({ DOCSIFT_HOME: REPO, ...s3.env, DOCSIFT_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` }).env)!;
    await expect(closed.put('x', Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    closed.close();
  });

  it('a record held for review and accepted through docsift api reaches the queue\'s s3 output', async () => {
    const prefix = uniquePrefix('s3review');
    const home = makeHome({ documents: documentsQueue({ outputs: { s3: { prefix: `${prefix}/results/` } }, review: { enabled: true, sampleRate: 1 } }) });
    const env = { ...process.env, ...s3.env, REDIS_URL, DOCSIFT_S3_PREFIX: `${prefix}/`, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info' };
    const { port } = await workerAndApi(env, prefix);
    const base = `http://127.0.0.1:${port}`;
    const form = new FormData();
    form.append('file', new Blob(['Invoice 7 from ACME, total 12.50 EUR']), 'held.txt');
    const { documents } = (await (await fetch(`${base}/v1/documents`, { method: 'POST', body: form })).json()) as { documents: Array<{ documentId: string }> };
    const id = documents[0]!.documentId;
    await until(async () => ((await (await fetch(`${base}/v1/reviews`)).json()) as { reviews: Array<{ documentId: string }> }).reviews.some((r) => r.documentId === id), 60_000);
    expect(s3.objects(`${prefix}/results/`)).toEqual([]);
    const accepted = await fetch(`${base}/v1/reviews/${id}/accept`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ by: 'alice' }) });
    expect(accepted.status).toBe(200);
    expect(s3.objects(`${prefix}/results/`)).toEqual([`${prefix}/results/${id}.json`]);
  }, 120_000);

  it('every entry point stores in the bucket, workers read from it, results go to it; bytes are deleted when final; a missing or foreign object fails once with its code', async () => {
    const prefix = uniquePrefix('s3');
    const home = makeHome({ documents: documentsQueue({ outputs: { s3: { prefix: `${prefix}/results/` } }, attempts: 3, backoff: { type: 'fixed', delayMs: 200 } }) });
    const env = {
      ...process.env, ...s3.env, REDIS_URL, DOCSIFT_STORE: 's3', DOCSIFT_S3_PREFIX: `${prefix}/`, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix,
      DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info',
    };
    const config = loadConfig(env);
    const keys = keysFor(config);
    const { redis, port, worker } = await workerAndApi(env, prefix);
    const watchDir = tempDir('s3-watch');
    const watch = await spawnDocsift(['watch', watchDir, '--stable-ms', '200', '--interval-ms', '200'], env, 'watching');
    cleanups.push(() => watch.stop('SIGKILL'));

    // The API streams an upload into the bucket; the CLI and the watched folder put theirs there too.
    const [pdf1, pdf2, pdf3] = corpusFiles();
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(fs.readFileSync(pdf1!))]), path.basename(pdf1!));
    const res = await fetch(`http://127.0.0.1:${port}/v1/documents`, { method: 'POST', body: form });
    expect(res.status).toBe(202);
    const viaApi = ((await res.json()) as { documents: Array<{ documentId: string }> }).documents[0]!.documentId;
    // Not spawnSync: the S3 server runs in this process and must keep answering.
    const cli = await promisify(execFile)(process.execPath, [BIN, 'enqueue', pdf2!, '--json'], { env, encoding: 'utf8' });
    const viaCli = (JSON.parse(cli.stdout) as { documentId: string }).documentId;
    fs.mkdirSync(path.join(watchDir, 'inbox'), { recursive: true });
    fs.copyFileSync(pdf3!, path.join(watchDir, 'inbox', 'scan.pdf'));

    const deadline = Date.now() + 120_000;
    const resultKeys = () => s3.objects(`${prefix}/results/`);
    while (resultKeys().length < 3 || !fs.existsSync(path.join(watchDir, 'done', 'scan.pdf.result.json'))) {
      if (Date.now() > deadline) throw new Error(`not done: ${JSON.stringify(resultKeys())}\n${worker.log()}`);
      await sleep(200);
    }
    const viaWatch = (JSON.parse(fs.readFileSync(path.join(watchDir, 'done', 'scan.pdf.result.json'), 'utf8')) as { documentId: string }).documentId;
    expect(resultKeys()).toEqual([viaApi, viaCli, viaWatch].map((id) => `${prefix}/results/${id}.json`).sort());
    // Retention: the bytes went when each document was final; nothing is left under doc/ (or on the API's disk).
    await until(() => s3.objects(`${prefix}/doc/`).length === 0);
    for (const pdf of [pdf1!, pdf2!, pdf3!]) expect(worker.log()).toContain(createHash('sha256').update(fs.readFileSync(pdf)).digest('hex').slice(0, 32));

    // A job naming an object that is not there fails DOCUMENT_MISSING on its first attempt (no retry
    // storm); one naming an object outside docsift's prefix fails KEY_NOT_ALLOWED without a read.
    const queue = new Queue('documents', { connection: redis, prefix: keys.bull('documents') });
    cleanups.push(() => queue.close());
    const gone = storedRef(config.env, keys, 'f'.repeat(64));
    await queue.add('document', { ref: gone, filename: 'gone.pdf' } as never, { jobId: 'gone', attempts: 3 });
    await queue.add('document', { ref: { kind: 's3', key: 'payroll/2026/salaries.xlsx' }, filename: 'x.xlsx' } as never, { jobId: 'foreign', attempts: 3 });
    for (const [id, code] of [['gone', 'DOCUMENT_MISSING'], ['foreign', 'KEY_NOT_ALLOWED']] as const) {
      await until(async () => (await queue.getJob(id))?.failedReason !== undefined);
      const job = (await queue.getJob(id))!;
      expect(job.failedReason).toContain(code);
      expect(job.attemptsMade).toBe(1);
    }

    // docsift doctor writes, reads and deletes a probe object, and says what bounds leftover bytes.
    const doctor = await promisify(execFile)(process.execPath, [BIN, 'doctor'], { env, encoding: 'utf8' });
    expect(doctor.stdout).toContain(`ok    s3: bucket docsift-test at ${s3.endpoint}: write, read and delete under ${prefix}/ work`);
    expect(doctor.stdout).toContain('warn  s3 lifecycle: the server does not report lifecycle rules (NotImplemented)');

    // The bucket unreachable: an upload is refused 503 STORE_UNAVAILABLE, and nothing is enqueued.
    await s3.stop();
    const down = new FormData();
    down.append('file', new Blob(['Invoice 5: while the bucket is down']), 'down.txt');
    const refused = await fetch(`http://127.0.0.1:${port}/v1/documents`, { method: 'POST', body: down });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('STORE_UNAVAILABLE');
  }, 180_000);
});
