import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeValidator } from '../../src/model/index.js';
import type { ResultRecord } from '../../src/pipeline/index.js';
import { Enqueuer, readResult } from '../../src/ingest/index.js';
import { FileDocumentStore } from '../../src/queue/index.js';
import { corpusFiles, tempDir } from '../helpers/testEnv.js';
import { makePdf } from '../helpers/pdf.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

const roots = tempDir('roots');
let stack: Stack;
beforeAll(async () => {
  // The fs-store and plain-BullMQ tests name files here: a job's path must be under a root.
  stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_DOCUMENT_ROOTS: roots });
});
afterAll(() => stack?.close());

describe('documents queue end to end (real Redis, generated GGUF model, real llama.cpp)', () => {
  it('completes every corpus invoice with a schema-valid record in Redis and the outbox', async () => {
    const files = corpusFiles();
    const outcomes = [];
    for (const file of files) outcomes.push(await stack.enqueueFile(file));
    expect(outcomes.every((o) => o.status === 'queued')).toBe(true);
    const statuses = await stack.waitAll(outcomes);
    const labels = stack.config.prompts.classify.labels;
    for (const status of statuses) {
      expect(status.state, JSON.stringify(status)).toBe('done');
      if (status.state !== 'done') continue;
      const record = status.record;
      expect(labels).toContain(record.classification.label);
      expect(record.classification.method).toBe('model');
      if (record.documentType) {
        const validate = makeValidator(stack.config.prompts.types.get(record.documentType)!.schema);
        expect(validate(record.fields).ok).toBe(true);
        // A confidence for every top-level scalar the model wrote, and for the label.
        const scalars = Object.keys(record.fields!).filter((k) => !Array.isArray(record.fields![k]));
        expect(Object.keys(record.confidence!)).toEqual(expect.arrayContaining(scalars));
        expect(record.classification.confidence).toBeGreaterThan(0);
        // The document is read once for both questions: the extraction reuses it from the sequence.
        expect(record.tokens.reused).toBeGreaterThan(record.text.chars);
      } else {
        expect(record.classification.label).toBe('other');
        expect(record.fields).toBeNull();
      }
      expect(record.prompts.classify).toBe('1');
      expect(record.model.file).toMatch(/\.gguf$/);
      expect(record.model.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(record.tokens.prompt).toBeGreaterThan(0);
      expect(record.tokens.generated).toBeGreaterThan(0);
      expect(record.attempts).toBe(1);
      expect(record.timings.totalMs).toBeGreaterThan(0);
      // Stored in Redis under the documented key, and in the outbox.
      expect(await readResult(stack.redis, stack.keys, record.documentId)).toEqual(record);
      const outboxRecord = JSON.parse(fs.readFileSync(path.join(stack.outbox, `${record.documentId}.json`), 'utf8')) as ResultRecord;
      expect(outboxRecord.documentId).toBe(record.documentId);
    }
    expect(fs.readdirSync(stack.outbox).filter((f) => f.endsWith('.json'))).toHaveLength(files.length);
  });

  it('keeps the result readable by document id after the job is removed', async () => {
    const [file] = corpusFiles();
    const outcome = await stack.enqueueFile(file!);
    const [status] = await stack.waitAll([outcome]);
    expect(status!.state).toBe('done');
    await (await stack.queue.getJob(outcome.jobId))?.remove();
    expect(await stack.queue.getJob(outcome.jobId)).toBeUndefined();
    expect((await readResult(stack.redis, stack.keys, outcome.documentId))?.documentId).toBe(outcome.documentId);
  });

  it('fails each broken file with its code, without retries, while the worker keeps going', async () => {
    const dir = tempDir('broken');
    const oyo = fs.readFileSync(corpusFiles().find((f) => f.endsWith('oyo.pdf'))!);
    const broken: Record<string, [Buffer, string]> = {
      'truncated.pdf': [oyo.subarray(0, 4000), 'CORRUPT_DOCUMENT'],
      'encrypted.pdf': [makePdf({ pages: ['secret'], encrypted: true }), 'ENCRYPTED'],
      'zero.pdf': [Buffer.alloc(0), 'EMPTY_TEXT'],
      'not-a.pdf': [Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00]), 'UNSUPPORTED_FORMAT'],
      'scan.pdf': [makePdf({ pages: [null] }), 'EMPTY_TEXT'],
    };
    const outcomes = [];
    for (const [name, [bytes]] of Object.entries(broken)) {
      fs.writeFileSync(path.join(dir, name), bytes);
      outcomes.push(await stack.enqueueFile(path.join(dir, name)));
    }
    // A good document after the bad ones proves the worker is still serving.
    fs.writeFileSync(path.join(dir, 'ok.txt'), 'Invoice 7 from ACME, total 12.50 EUR');
    const good = await stack.enqueueFile(path.join(dir, 'ok.txt'));
    const statuses = await stack.waitAll([...outcomes, good]);
    Object.values(broken).forEach(([, code], i) => {
      const status = statuses[i]!;
      expect(status.state, JSON.stringify(status)).toBe('failed');
      if (status.state === 'failed') {
        expect(status.code).toBe(code);
        expect(status.attempts).toBe(1);
      }
    });
    expect(statuses.at(-1)!.state).toBe('done');
    const failure = JSON.parse((await stack.redis.get(stack.keys.failure(outcomes[0]!.documentId)))!);
    expect(failure).toMatchObject({ code: 'CORRUPT_DOCUMENT', willRetry: false, filename: 'truncated.pdf' });
  });

  it('runs the same file enqueued twice once; --force runs it again', async () => {
    const dir = tempDir('dup');
    const file = path.join(dir, 'note.md');
    fs.writeFileSync(file, '# Receipt\n\nCafe Central, 2 coffees, 7.20 EUR, paid by card');
    const first = await stack.enqueueFile(file);
    const second = await stack.enqueueFile(file);
    expect(first.status).toBe('queued');
    expect(second.status).toBe('duplicate');
    expect(second.jobId).toBe(first.jobId);
    await stack.waitAll([first]);
    const third = await stack.enqueueFile(file);
    expect(third.status).toBe('done'); // a result beats the finished job BullMQ still keeps
    const jobs = await stack.queue.getJobs(['completed', 'waiting', 'active', 'failed']);
    expect(jobs.filter((j) => j.data.documentId === first.documentId)).toHaveLength(1);
    const forced = await stack.enqueueFile(file, true);
    expect(forced.status).toBe('queued');
    expect(forced.jobId).not.toBe(first.jobId);
    expect(forced.documentId).toBe(first.documentId);
    const [status] = await stack.waitAll([forced]);
    expect(status!.state).toBe('done');
  });

  it('keeps enqueued bytes on a shared folder with DOCSIFT_STORE=fs', async () => {
    const storeDir = path.join(roots, 'store');
    const enqueuer = new Enqueuer(stack.config, stack.queueConfig, stack.queue, stack.redis, stack.keys, new FileDocumentStore(storeDir));
    const bytes = Buffer.from('RECEIPT\nBakery Lind, 3 rolls 2.40 EUR, cash, 2026-03-01');
    const outcome = await enqueuer.enqueue({ bytes, filename: 'r.txt', source: 'test' });
    const job = await stack.queue.getJob(outcome.jobId);
    expect(job!.data.ref).toEqual({ kind: 'file', path: path.join(storeDir, outcome.sha256.slice(0, 2), outcome.sha256) });
    expect(fs.readFileSync((job!.data.ref as { path: string }).path)).toEqual(bytes);
    const [status] = await stack.waitAll([outcome]);
    expect(status!.state).toBe('done');
  });

  it('processes a job added with a plain BullMQ Queue.add and the minimal documented payload', async () => {
    const dir = roots;
    const file = path.join(dir, 'po.txt');
    fs.writeFileSync(file, 'PURCHASE ORDER PO-991\nSupplier: Widgets Ltd\n10 x bolts @ 0.20');
    const queue = new Queue('documents', { connection: stack.redis, prefix: stack.keys.bull('documents') });
    const job = await queue.add('document', { ref: { kind: 'file', path: file }, filename: 'po.txt', source: 'erp' }, { jobId: 'erp-po-991' });
    const [status] = await stack.waitAll([{ documentId: 'unused', jobId: job.id!, sha256: '', status: 'queued' }]);
    expect(status!.state).toBe('done');
    if (status!.state === 'done') {
      expect(status!.record.source).toBe('erp');
      expect(status!.record.documentId).toMatch(/^[0-9a-f]{32}-[0-9a-f]{12}$/);
    }
    // The job's log, for Bull Board: the text and model lines, sent as they came or with the result.
    const { logs } = await queue.getJobLogs(job.id!);
    expect(logs.join('\n')).toMatch(/text: text, 1 page\(s\)[\s\S]*model: \w+ \(/);
    await queue.close();
  });

  it('rejects a payload that breaks the contract with INVALID_JOB', async () => {
    const queue = new Queue('documents', { connection: stack.redis, prefix: stack.keys.bull('documents') });
    const job = await queue.add('document', { ref: { kind: 'file', path: 'relative/path.pdf' } } as never, { jobId: 'bad-payload' });
    await queue.close();
    const [status] = await stack.waitAll([{ documentId: 'bad-payload', jobId: job.id!, sha256: '', status: 'queued' }]);
    expect(status).toMatchObject({ state: 'failed', code: 'INVALID_JOB' });
  });
});
