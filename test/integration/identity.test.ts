import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineInfo } from '../../src/config/index.js';
import { findDocument, readResult } from '../../src/ingest/index.js';
import { documentIdFor } from '../../src/queue/index.js';
import type { ResultRecord } from '../../src/pipeline/index.js';
import { REPO, tempDir } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

/**
 * One identity per document whoever enqueues it: a foreign producer with job ids of its own,
 * plain BullMQ, no docsift code. The document id is derived from the bytes and the pipeline.
 */
const roots = tempDir('identity-roots');
let stack: Stack;
let queue: Queue;
beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_DOCUMENT_ROOTS: roots });
  queue = new Queue('documents', { connection: stack.redis, prefix: stack.keys.bull('documents') });
});
afterAll(async () => {
  await queue?.close();
  await stack?.close();
});

function file(name: string, text: string): { path: string; sha256: string } {
  const p = path.join(roots, name);
  fs.writeFileSync(p, text);
  return { path: p, sha256: createHash('sha256').update(text).digest('hex') };
}

async function run(jobId: string, data: Record<string, unknown>) {
  const job = await queue.add('document', data, { jobId });
  const [status] = await stack.waitAll([{ documentId: 'unused', jobId: job.id!, sha256: '', status: 'queued' }]);
  return status!;
}

describe('document identity across producers', () => {
  it('the same bytes under a second job id return the stored result: no second run, nothing overwritten', async () => {
    const doc = file('a.txt', 'INVOICE A-77\nACME GmbH\nTotal 12.00 EUR');
    const first = await run('erp-1', { ref: { kind: 'file', path: doc.path }, filename: 'a.txt', source: 'erp', metadata: { n: 1 } });
    expect(first.state).toBe('done');
    const documentId = documentIdFor(doc.sha256, stack.enqueuer.pipelineVersion);
    const stored = (await readResult(stack.redis, stack.keys, documentId))!;
    expect(stored.jobId).toBe('erp-1');
    const second = await run('erp-2', { ref: { kind: 'file', path: doc.path }, filename: 'renamed.txt', source: 'other', metadata: { n: 2 } });
    expect(second.state).toBe('done');
    // The second job's return value is the first job's record, and the stored record is unchanged.
    const returned = (await queue.getJob('erp-2'))!.returnvalue as ResultRecord;
    expect(returned).toEqual(stored);
    expect(await readResult(stack.redis, stack.keys, documentId)).toEqual(stored);
    // force: true runs it again and replaces the record.
    const forced = await run('erp-3', { ref: { kind: 'file', path: doc.path }, filename: 'again.txt', source: 'erp', force: true });
    expect(forced.state).toBe('done');
    const replaced = (await readResult(stack.redis, stack.keys, documentId))!;
    expect(replaced).toMatchObject({ jobId: 'erp-3', filename: 'again.txt', documentId });
  });

  it('a job that claims a sha256 whose bytes are missing fails under the document id derived from it', async () => {
    const sha256 = createHash('sha256').update('never stored').digest('hex');
    const status = await run('erp-missing', { ref: { kind: 'redis', key: stack.keys.document(sha256) }, sha256, filename: 'gone.pdf', documentId: 'chosen-by-the-client' });
    expect(status.state).toBe('failed');
    const documentId = documentIdFor(sha256, stack.enqueuer.pipelineVersion);
    const failure = JSON.parse((await stack.redis.get(stack.keys.failure(documentId)))!) as { documentId: string; jobId: string; code: string };
    expect(failure).toMatchObject({ documentId, jobId: 'erp-missing' });
    expect(await stack.redis.exists(stack.keys.failure('chosen-by-the-client'), stack.keys.failure('erp-missing'))).toBe(0);
    // A lookup by the derived id (what the API and the client do) finds the failure.
    const found = await findDocument(new Map([['documents', queue as never]]), stack.redis, stack.keys, documentId);
    expect(found.status).toMatchObject({ state: 'failed', code: failure.code });
  });

  it('publishes the pipeline version: in Redis by the worker, and by the CLI from the configuration', async () => {
    const info = pipelineInfo(stack.config, stack.queueConfig);
    expect(info.pipelineVersion).toBe(stack.enqueuer.pipelineVersion);
    // With where the queue's keys are, for producers that write them (hash-tagged on a Cluster).
    const k = stack.keys;
    expect(JSON.parse((await stack.redis.get(k.pipeline('documents')))!)).toEqual({
      ...info,
      keys: {
        bull: k.bull('documents'), document: k.document('<sha256>'), documentHolders: k.documentHolders('<sha256>'),
        result: k.result('<documentId>'), failure: k.failure('<documentId>'), latestJob: k.latestJob('<documentId>'),
      },
    });
    const cli = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'pipeline', '-q', 'documents'], { env: { ...process.env, DOCSIFT_HOME: stack.config.home }, encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual(info);
  });
});
