/**
 * npm run soak -- [--docs 10000] [--workers 3] [--kill-every-ms 5000] [--timeout-s 7200]
 *
 * Many small documents through several worker processes while a random worker is killed with
 * SIGKILL every few seconds (and replaced). Prints documents in, results out, failed, lost and
 * duplicate records; exits 1 unless out + failed = in, lost = 0 and duplicates = 0. Not part of
 * `npm test` at full size: test/integration/soak.test.ts runs a small one.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { getQueue, loadConfig } from '../../src/config/index.js';
import { Enqueuer, waitForDocuments } from '../../src/ingest/index.js';
import { connectRedis, createDocumentQueue, createRedis, keys as makeKeys, RedisDocumentStore } from '../../src/queue/index.js';
import { documentsQueue } from '../helpers/stack.js';
import { makeHome, REDIS_URL, tempDir, testModelPath, uniquePrefix } from '../helpers/testEnv.js';
import { spawnWorker } from '../helpers/workers.js';

export interface SoakResult {
  in: number;
  out: number;
  failed: number;
  /** Failed documents by error code, so a failed soak says why. */
  failures: Record<string, number>;
  lost: number;
  duplicates: number;
  reprocessed: number;
  kills: number;
  seconds: number;
}

export async function soak(options: { docs: number; workers: number; killEveryMs: number; timeoutS: number; log?: (line: string) => void }): Promise<SoakResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = Date.now();
  const outbox = tempDir('soak-outbox');
  const home = makeHome({ documents: documentsQueue({ concurrency: 2, outputs: { outbox: { dir: outbox } }, worker: { lockDurationMs: 5000, stalledIntervalMs: 2000, maxStalledCount: 10 } }) });
  const prefix = uniquePrefix('soak');
  const env = { ...process.env, REDIS_URL, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info' };
  const config = loadConfig(env);
  const keys = makeKeys(prefix);
  const redis = createRedis(REDIS_URL, { forWorker: false });
  await connectRedis(redis, REDIS_URL);
  const queueConfig = getQueue(config, 'documents');
  const queue = createDocumentQueue(queueConfig, redis, keys);
  const enqueuer = new Enqueuer(config, queueConfig, queue, redis, keys, new RedisDocumentStore(redis, keys, 24 * 3600));

  const workers = await Promise.all(Array.from({ length: options.workers }, () => spawnWorker(env)));
  const finishedLogs: string[] = [];
  let kills = 0;
  let stopping = false;
  const killer = (async () => {
    while (!stopping) {
      await new Promise((r) => setTimeout(r, options.killEveryMs));
      if (stopping) break;
      const i = Math.floor(Math.random() * workers.length);
      const victim = workers[i]!;
      await victim.stop('SIGKILL');
      finishedLogs.push(victim.log());
      kills++;
      workers[i] = await spawnWorker(env);
    }
  })();

  const outcomes = [];
  for (let i = 0; i < options.docs; i++) {
    const kind = ['Invoice', 'Receipt', 'Purchase order', 'Contract'][i % 4];
    outcomes.push(await enqueuer.enqueue({ bytes: Buffer.from(`${kind} ${i}: soak document number ${i}, amount ${i % 97}.50 EUR`), filename: `soak-${i}.txt`, source: 'soak' }));
    if (i % 1000 === 999) log(`enqueued ${i + 1}`);
  }
  log(`enqueued ${outcomes.length}; waiting`);
  let settled = 0;
  const statuses = await waitForDocuments(queue, redis, keys, outcomes, {
    timeoutMs: options.timeoutS * 1000, pollMs: 500,
    onSettled: () => { if (++settled % 500 === 0) log(`settled ${settled}`); },
  });
  stopping = true;
  await killer;
  for (const w of workers) {
    await w.stop('SIGTERM');
    finishedLogs.push(w.log());
  }

  const done = statuses.filter((s) => s.state === 'done').length;
  const failures: Record<string, number> = {};
  for (const s of statuses) if (s.state === 'failed') failures[s.code] = (failures[s.code] ?? 0) + 1;
  const failed = statuses.filter((s) => s.state === 'failed').length;
  const outboxFiles = fs.readdirSync(outbox).filter((f) => f.endsWith('.json'));
  const completions = finishedLogs.reduce((n, l) => n + (l.match(/"msg":"document done"/g) ?? []).length, 0);
  const resultKeys = await redis.keys(`${prefix}:result:*`);
  await queue.obliterate({ force: true });
  await queue.close();
  const leftovers = await redis.keys(`${prefix}:*`);
  if (leftovers.length) await redis.del(...leftovers);
  await redis.quit();
  fs.rmSync(outbox, { recursive: true, force: true });
  return {
    in: outcomes.length,
    out: done,
    failed,
    failures,
    lost: outcomes.length - done - failed,
    // Records beyond one per document in an output: the outbox and Redis must each hold exactly `out`.
    duplicates: Math.max(0, outboxFiles.length - done) + Math.max(0, resultKeys.length - done),
    // Documents finished more than once because a worker died after finishing but before BullMQ
    // recorded it (at-least-once delivery); idempotent outputs keep one record regardless.
    reprocessed: Math.max(0, completions - done),
    kills,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const { values } = parseArgs({ options: {
    docs: { type: 'string', default: '10000' }, workers: { type: 'string', default: '3' },
    'kill-every-ms': { type: 'string', default: '5000' }, 'timeout-s': { type: 'string', default: '7200' },
  } });
  const result = await soak({ docs: Number(values.docs), workers: Number(values.workers), killEveryMs: Number(values['kill-every-ms']), timeoutS: Number(values['timeout-s']) });
  process.stdout.write(`documents in ${result.in}, results out ${result.out}, failed ${result.failed} ${JSON.stringify(result.failures)}, lost ${result.lost}, duplicates ${result.duplicates} (re-processed ${result.reprocessed}, ${result.kills} workers killed, ${result.seconds} s)\n`);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(result.out + result.failed === result.in && result.lost === 0 && result.duplicates === 0 ? 0 : 1);
}
