// A back-office producer in plain BullMQ, written from docs/JOB-PAYLOAD.md alone (the test suite
// runs it: test/integration/foreignProducer.test.ts). Usage, from a project with bullmq installed:
//   REDIS_URL=redis://127.0.0.1:6379 DOCSIFT_PREFIX=docsift node bullmq-producer.mjs invoice.pdf
// Prints the result record as JSON, or "FAILED <code>: <message>" and exits 1.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

const prefix = process.env.DOCSIFT_PREFIX ?? 'docsift';
const queueName = process.env.DOCSIFT_QUEUE ?? 'documents';
const file = process.argv[2];
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });

// 1. The canonical document id: the bytes' hash and the queue's pipeline version.
const bytes = fs.readFileSync(file);
const sha256 = createHash('sha256').update(bytes).digest('hex');
const published = await redis.get(`${prefix}:pipeline:${queueName}`);
if (!published) throw new Error(`no ${prefix}:pipeline:${queueName}: start a docsift worker for queue ${queueName} first`);
const { pipelineVersion } = JSON.parse(published);
const documentId = `${sha256.slice(0, 32)}-${pipelineVersion}`;

// 2. The bytes under the document key, held for this job (docsift deletes them when it is final).
const key = `${prefix}:doc:${sha256}`;
const ttl = 7 * 24 * 3600;
await redis.multi()
  .set(key, bytes, 'EX', ttl)
  .sadd(`${key}:holders`, `${queueName}:${documentId}`)
  .expire(`${key}:holders`, ttl)
  .exec();

// 3. The job, under the canonical id, so the same document is one job.
const connection = { url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
const queue = new Queue(queueName, { connection, prefix: `${prefix}:bull` });
const events = new QueueEvents(queueName, { connection, prefix: `${prefix}:bull` });
await events.waitUntilReady();
const job = await queue.add('document',
  { ref: { kind: 'redis', key }, sha256, documentId, filename: path.basename(file), source: 'erp-example', metadata: { erpId: 'E-1' } },
  { jobId: documentId, attempts: 3, backoff: { type: 'exponential', delay: 5000 } });

// 4. Wait: the job's return value is the result record; a failure reason is "CODE: message".
let status = 0;
try {
  const record = await job.waitUntilFinished(events, 120_000);
  process.stdout.write(`${JSON.stringify(record)}\n`);
} catch (err) {
  process.stdout.write(`FAILED ${err.message}\n`);
  status = 1;
}
await events.close();
await queue.close();
redis.disconnect();
process.exit(status);
