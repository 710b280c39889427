import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, REPO, tempDir } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';

/**
 * docs/examples/bullmq-producer.mjs, written from JOB-PAYLOAD.md alone, run as a back-office
 * system would run it; then its result read back through the documented Redis keys and BullMQ's
 * event stream with plain Redis commands, as a client in another language would.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents');
});
afterAll(() => stack?.close());

/** Runs the example as its own process (not spawnSync: the worker runs in this one). */
async function produce(file: string) {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [path.join(REPO, 'docs/examples/bullmq-producer.mjs'), file], {
      env: { ...process.env, REDIS_URL, DOCSIFT_PREFIX: stack.config.env.DOCSIFT_PREFIX }, encoding: 'utf8', timeout: 120_000,
    }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${out}${errOut}`)) : resolve(out)));
  });
  return JSON.parse(stdout) as { documentId: string; jobId: string; source: string; metadata: Record<string, unknown> };
}

describe('a foreign producer from the docs alone', () => {
  it('enqueues with the canonical id, waits for the record, and finds it under the documented keys and events', async () => {
    const file = path.join(tempDir('foreign'), 'inv.txt');
    fs.writeFileSync(file, 'INVOICE F-19\nNordwind Logistik AG\nTotal 99.00 EUR');
    const sha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    const record = await produce(file);
    expect(record.documentId).toBe(`${sha256.slice(0, 32)}-${stack.enqueuer.pipelineVersion}`);
    expect(record).toMatchObject({ jobId: record.documentId, source: 'erp-example', metadata: { erpId: 'E-1' } });
    // Without BullMQ: the result key, and the completed event on the queue's event stream.
    const prefix = stack.config.env.DOCSIFT_PREFIX;
    expect(JSON.parse((await stack.redis.get(`${prefix}:result:${record.documentId}`))!)).toEqual(record);
    const stream = (await stack.redis.xrange(`${prefix}:bull:documents:events`, '-', '+')) as Array<[string, string[]]>;
    const completed = stream.map(([, kv]) => Object.fromEntries(Array.from({ length: kv.length / 2 }, (_, i) => [kv[2 * i], kv[2 * i + 1]])))
      .find((e) => e.event === 'completed' && e.jobId === record.documentId);
    expect(JSON.parse(completed!.returnvalue!)).toMatchObject({ documentId: record.documentId });
    // The bytes were the job's alone: deleted once it was final.
    expect(await stack.redis.exists(`${prefix}:doc:${sha256}`)).toBe(0);
    // The same document again: the same job id, the same record, no second run.
    expect(await produce(file)).toEqual(record);
  });
});
