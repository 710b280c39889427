import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/ingest/http/apiServer.js';
import { FolderWatcher } from '../../src/ingest/folder/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { Metrics } from '../../src/infra/metrics.js';
import { readFileUnderRoots } from '../../src/infra/safeFile.js';
import { documentIdFor } from '../../src/queue/index.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { tempDir, until } from '../helpers/testEnv.js';

/**
 * Every caller is untrusted: a job anyone with Redis access added, a path in an API request, a
 * file dropped in a watched folder. Nothing outside the configured roots may be read, whatever
 * the caller names and however it swaps files while docsift looks.
 */
const root = tempDir('trust-root');
const outside = tempDir('trust-outside');
const secretFile = path.join(outside, 'secret.txt');
const SECRET = 'INVOICE from outside the roots: must never be read\n';
const secretSha = createHash('sha256').update(SECRET).digest('hex');
const logger = createLogger({ level: 'silent', destination: 'stderr' });
let stack: Stack;
let queue: Queue;

beforeAll(async () => {
  fs.writeFileSync(secretFile, SECRET);
  stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_DOCUMENT_ROOTS: root, DOCSIFT_API_ROOTS: root });
  queue = new Queue('documents', { connection: stack.redis, prefix: stack.keys.bull('documents') });
});
afterAll(async () => {
  await queue?.close();
  await stack?.close();
});

/** Adds a job as any Redis client could, and waits for where it ends. */
async function addJob(jobId: string, data: Record<string, unknown>) {
  await queue.add('document', data as never, { jobId });
  const [status] = await stack.waitAll([{ documentId: jobId, jobId, sha256: '', status: 'queued' }], 60_000);
  return status!;
}

/**
 * A separate process that swaps `target` between a regular file and a symbolic link to the
 * secret as fast as it can (and `dirTarget` between a folder and a link to the outside folder),
 * so the swap lands between any two steps of a check-then-open.
 */
function startSwapper(target: string, dirTarget: string): ChildProcess {
  const script = `
    const fs = require('node:fs');
    const [target, dirTarget, secret, outside] = process.argv.slice(1);
    const end = Date.now() + 60000;
    let i = 0;
    while (Date.now() < end) {
      const tmp = target + '.swap' + (i++ % 2);
      try { fs.rmSync(tmp, { force: true }); } catch {}
      if (i % 2) fs.writeFileSync(tmp, 'INVOICE inside the root ' + (i % 7) + '\\n'); else fs.symlinkSync(secret, tmp);
      fs.renameSync(tmp, target);
      const dtmp = dirTarget + '.swap';
      fs.rmSync(dtmp, { recursive: true, force: true });
      if (i % 2) { fs.mkdirSync(dtmp); fs.writeFileSync(dtmp + '/secret.txt', 'INVOICE inside too\\n'); } else fs.symlinkSync(outside, dtmp);
      try { fs.renameSync(dtmp, dirTarget); } catch { fs.rmSync(dirTarget, { recursive: true, force: true }); fs.renameSync(dtmp, dirTarget); }
    }`;
  return spawn(process.execPath, ['-e', script, target, dirTarget, secretFile, outside], { stdio: 'ignore' });
}

describe('a job in Redis is checked before anything is read', () => {
  it('refuses paths outside the roots, .. paths, links out, non-files, foreign keys and forged ids, with codes', async () => {
    fs.symlinkSync(secretFile, path.join(root, 'link-out.txt'));
    fs.mkdirSync(path.join(root, 'sub'));
    fs.symlinkSync(outside, path.join(root, 'sub', 'dirlink'));
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['outside', { ref: { kind: 'file', path: secretFile } }, 'PATH_NOT_ALLOWED'],
      ['etc', { ref: { kind: 'file', path: '/etc/passwd' } }, 'PATH_NOT_ALLOWED'],
      ['dotdot', { ref: { kind: 'file', path: `${root}/../${path.basename(outside)}/secret.txt` } }, 'PATH_NOT_ALLOWED'],
      ['link', { ref: { kind: 'file', path: path.join(root, 'link-out.txt') } }, 'PATH_NOT_ALLOWED'],
      ['dirlink', { ref: { kind: 'file', path: path.join(root, 'sub', 'dirlink', 'secret.txt') } }, 'PATH_NOT_ALLOWED'],
      ['folder', { ref: { kind: 'file', path: path.join(root, 'sub') } }, 'PATH_NOT_ALLOWED'],
      ['foreign-key', { ref: { kind: 'redis', key: `someone-else:doc:${secretSha}` } }, 'KEY_NOT_ALLOWED'],
      ['own-non-document-key', { ref: { kind: 'redis', key: stack.keys.result('x') } }, 'KEY_NOT_ALLOWED'],
    ];
    await stack.redis.set(`someone-else:doc:${secretSha}`, SECRET, 'EX', 60);
    for (const [jobId, data, code] of cases) {
      const status = await addJob(`trust-${jobId}`, data);
      expect(status, jobId).toMatchObject({ state: 'failed', code, attempts: 1 });
    }
    await stack.redis.del(`someone-else:doc:${secretSha}`);

    // A genuine file under a root with a forged document id (another document's) is refused too.
    const inside = path.join(root, 'po.txt');
    fs.writeFileSync(inside, 'PURCHASE ORDER PO-7 Widgets Ltd');
    const victim = documentIdFor('f'.repeat(64), stack.enqueuer.pipelineVersion);
    const forged = await addJob('trust-forged', { ref: { kind: 'file', path: inside }, documentId: victim });
    expect(forged).toMatchObject({ state: 'failed', code: 'DOCUMENT_ID_MISMATCH' });
    expect(await stack.redis.exists(stack.keys.result(victim))).toBe(0);
    // The same file without the forged id is processed: the roots are open, the checks are not in the way.
    expect((await addJob('trust-genuine', { ref: { kind: 'file', path: inside } })).state).toBe('done');

    // Nothing anywhere holds a result of the secret's bytes.
    const results = await stack.redis.keys(`${stack.keys.result('*')}`);
    for (const key of results) expect(JSON.parse((await stack.redis.get(key))!).sha256).not.toBe(secretSha);
  });
});

describe('open once, no links followed, checked as opened', () => {
  it('the shared reader never returns the outside file while a file and a folder are swapped with links', async () => {
    const dir = tempDir('trust-race');
    const target = path.join(dir, 'doc.txt');
    const dirTarget = path.join(dir, 'd');
    fs.writeFileSync(target, 'INVOICE inside\n');
    fs.mkdirSync(dirTarget);
    const swapper = startSwapper(target, dirTarget);
    try {
      const outcomes = { read: 0, refused: 0, missing: 0 };
      for (let i = 0; i < 4000; i++) {
        for (const file of [target, path.join(dirTarget, 'secret.txt')]) {
          try {
            const { bytes } = await readFileUnderRoots(file, [dir], 1_000_000);
            expect(bytes.toString()).not.toBe(SECRET);
            outcomes.read++;
          } catch (err) {
            const code = (err as { code?: string }).code;
            if (!code) throw err;
            expect(['PATH_NOT_ALLOWED', 'DOCUMENT_MISSING']).toContain(code);
            if (code === 'PATH_NOT_ALLOWED') outcomes.refused++;
            else outcomes.missing++;
          }
        }
      }
      // The swapper really raced the reads: both kinds of outcome happened many times.
      expect(outcomes.read).toBeGreaterThan(100);
      expect(outcomes.refused).toBeGreaterThan(100);
    } finally {
      swapper.kill('SIGKILL');
    }
  });

  it('the API\'s path enqueue never enqueues the outside file while the named file is swapped', async () => {
    const app: FastifyInstance = await buildApi({
      config: stack.config, redis: stack.redis, keys: stack.keys, logger, metrics: new Metrics(),
      queues: new Map([['documents', { config: stack.queueConfig, queue: stack.queue, enqueuer: stack.enqueuer }]]),
    });
    const target = path.join(root, 'swapped.txt');
    const dirTarget = path.join(root, 'swapdir');
    fs.writeFileSync(target, 'INVOICE inside\n');
    fs.mkdirSync(dirTarget);
    await stack.queue.pause();
    const swapper = startSwapper(target, dirTarget);
    const statuses = new Map<number, number>();
    try {
      for (let i = 0; i < 300; i++) {
        for (const p of ['swapped.txt', 'swapdir/secret.txt']) {
          const res = await app.inject({ method: 'POST', url: '/v1/documents', payload: { path: p, force: true } });
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode === 202) expect(res.json().documents[0].documentId.slice(0, 32)).not.toBe(secretSha.slice(0, 32));
          else expect(['PATH_NOT_ALLOWED', 'DOCUMENT_MISSING']).toContain(res.json().error.code);
        }
      }
      expect(statuses.get(202)).toBeGreaterThan(10);
      expect(statuses.get(403)).toBeGreaterThan(10);
    } finally {
      swapper.kill('SIGKILL');
      await app.close();
      await stack.queue.obliterate({ force: true });
      await stack.queue.resume();
    }
  });

  it('a link, a link to a folder and a FIFO dropped in a watched inbox end in failed/ with PATH_NOT_ALLOWED', async () => {
    const dir = tempDir('trust-watch');
    const w = new FolderWatcher(stack.config, new Map([['documents', { queue: stack.queue, enqueuer: stack.enqueuer }]]), stack.redis, stack.keys, {
      dir, queue: 'documents', stableMs: 200, intervalMs: 100, useEvents: false, duplicates: 'skip',
    }, logger);
    await w.start();
    try {
      fs.symlinkSync(secretFile, path.join(dir, 'inbox', 'link.txt'));
      fs.symlinkSync(outside, path.join(dir, 'inbox', 'folder-link'));
      fs.mkdirSync(path.join(dir, 'inbox', 'invoice'), { recursive: true });
      fs.symlinkSync(secretFile, path.join(dir, 'inbox', 'invoice', 'typed-link.txt'));
      execFileSync('mkfifo', [path.join(dir, 'inbox', 'pipe.txt')]);
      const failed = path.join(dir, 'failed');
      const sidecars = () => [...(fs.existsSync(failed) ? fs.readdirSync(failed, { recursive: true }) as string[] : [])].filter((f) => f.endsWith('.error.json'));
      await until(() => sidecars().length === 4, 30_000);
      for (const sidecar of sidecars()) {
        expect(JSON.parse(fs.readFileSync(path.join(failed, sidecar), 'utf8')), sidecar).toMatchObject({ code: 'PATH_NOT_ALLOWED' });
      }
      expect(fs.lstatSync(path.join(failed, 'link.txt')).isSymbolicLink()).toBe(true);
      const left = (fs.readdirSync(path.join(dir, 'processing'), { recursive: true }) as string[]).filter((f) => !fs.lstatSync(path.join(dir, 'processing', f)).isDirectory());
      expect(left).toEqual([]);
      expect(fs.readdirSync(path.join(dir, 'inbox')).filter((f) => f !== 'invoice')).toEqual([]);
    } finally {
      await w.stop();
    }
  });
});
