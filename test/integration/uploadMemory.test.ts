import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redisServer.js';
import { documentsQueue } from '../helpers/stack.js';
import { deleteKeys, makeHome, REDIS_URL, REPO, uniquePrefix, until } from '../helpers/testEnv.js';

/**
 * Uploads stream to the document store: the API process's memory stays flat while it takes
 * files far larger than what it may grow by. Measured on a real `docsift api` process (its own
 * RSS, not this test runner's), over real HTTP.
 */
const MB = 1024 * 1024;
const prefix = uniquePrefix('upload-memory');
let api: ChildProcess;
let base: string;
const redis = new Redis(REDIS_URL);

beforeAll(async () => {
  const port = await freePort();
  const home = makeHome({ documents: documentsQueue({ limits: { maxBytes: 50 * MB } }) });
  api = spawn(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'api', '--port', String(port), '--no-board'], {
    env: { ...process.env, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, REDIS_URL, DOCSIFT_LOG_LEVEL: 'warn', DOCSIFT_API_MAX_REQUEST_BYTES: String(200 * MB) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  base = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok === true, 30_000);
});

afterAll(async () => {
  api?.kill('SIGTERM');
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

/** Current and peak resident memory of the API process, in MB. */
function memory(): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${api.pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)![1]) / 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

async function send(files: Buffer[]): Promise<number> {
  const form = new FormData();
  files.forEach((bytes, i) => form.append('file', new Blob([new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)]), `big-${i}.txt`));
  const res = await fetch(`${base}/v1/documents`, { method: 'POST', body: form });
  await res.arrayBuffer();
  return res.status;
}

describe('upload memory', () => {
  it('takes 6 x 40 MB in three requests while its RSS stays flat', async () => {
    // Warm up: the first upload loads the multipart code paths and grows V8's heap once.
    expect(await send([Buffer.from('INVOICE warm-up\n')])).toBe(202);
    const before = memory();
    const peaks: number[] = [];
    for (let request = 0; request < 3; request++) {
      const files = [0, 1].map((i) => Buffer.alloc(40 * MB, `INVOICE ${request}-${i} `));
      expect(await send(files)).toBe(202);
      peaks.push(memory().peak);
    }
    const growth = peaks.at(-1)! - before.rss;
    const report = `RSS ${before.rss.toFixed(0)} MB before, peaks ${peaks.map((p) => p.toFixed(0)).join(', ')} MB after each request`;
    // Buffered whole (before uploads streamed), the API peaked 299 MB above its start on this test.
    // Streamed, a file passes through in 1 MB writes; what remains is garbage V8 collects when
    // its external memory passes its own threshold (~80 MB measured on Node 20, ~106 MB on Node
    // 24), the same after 80 MB or 240 MB of uploads: flat.
    expect(growth, report).toBeLessThan(150);
    expect(peaks.at(-1)! - peaks[0]!, report).toBeLessThan(40);
    // Every byte arrived: the stored documents are whole.
    const keys = (await redis.keys(`${prefix}:doc:*`)).filter((k) => !k.endsWith(':holders'));
    const sizes = await Promise.all(keys.map((k) => redis.strlen(k)));
    expect(sizes.filter((n) => n === 40 * MB)).toHaveLength(6);
  });
});
