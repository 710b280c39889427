/**
 * npm run scale [-- --nodes 1,2,4,8,12,16,20] [-- --docs 3000] [-- --concurrency 8]
 *
 * The capacity model's measurement (docs/SCALING.md): N simulated worker nodes (OS processes, each
 * a DocumentWorker with the instant model, bench/instantWorker.ts) against one Redis, for each N:
 * documents/s through the queue, the Redis server's CPU (seconds of CPU per second, and µs per
 * document) and its memory per document waiting and per document done. The model answers at once,
 * so this is the most a Redis primary is asked per document; real nodes ask it far less often.
 * Prints a table and one JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getQueue, loadConfig } from '../src/config/index.js';
import { Enqueuer } from '../src/ingest/index.js';
import { connectRedis, createDocumentQueue, createRedis, keysFor, RedisDocumentStore } from '../src/queue/index.js';
import { documentsQueue } from '../test/helpers/stack.js';
import { deleteKeys, makeHome, REDIS_URL, REPO, uniquePrefix } from '../test/helpers/testEnv.js';

const { values: args } = parseArgs({ options: {
  nodes: { type: 'string', default: '1,2,4,8,12,16,20' },
  docs: { type: 'string', default: '3000' },
  concurrency: { type: 'string', default: '8' },
} });
const NODES = args.nodes!.split(',').map(Number);
const DOCS = Number(args.docs);
const CONCURRENCY = Number(args.concurrency);

export interface ScaleStep {
  nodes: number;
  docsPerS: number;
  /** Redis CPU seconds per wall second while the documents went through (1.0 = one core busy). */
  redisCpu: number;
  redisCpuUsPerDoc: number;
  /** Redis memory per document: enqueued and waiting, then done (its record and finished job kept). */
  redisBytesPerWaitingDoc: number;
  redisBytesPerDoneDoc: number;
  /** Of which the result record alone (MEMORY USAGE of one result key): what retention.recordSeconds keeps. */
  redisBytesPerRecord: number;
}

async function step(nodes: number): Promise<ScaleStep> {
  const prefix = uniquePrefix('scale');
  const home = makeHome({ documents: documentsQueue({ concurrency: CONCURRENCY, pipeline: { mode: 'extract', documentType: 'invoice' }, outputs: {}, retention: { completed: DOCS, deleteBytesWhenFinal: true } }) });
  const env = { ...process.env, REDIS_URL, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, DOCSIFT_LOG_LEVEL: 'silent' };
  const config = loadConfig(env);
  const keys = keysFor(config);
  const queueConfig = getQueue(config, 'documents');
  const redis = createRedis(REDIS_URL, { forWorker: true });
  await connectRedis(redis, REDIS_URL);
  const queue = createDocumentQueue(queueConfig, redis, keys);
  const info = async (section: string) => Object.fromEntries((await redis.info(section)).split(/\r?\n/).filter((l) => l.includes(':')).map((l) => l.split(':') as [string, string]));
  const redisCpu = async () => { const i = await info('cpu'); return Number(i['used_cpu_user']) + Number(i['used_cpu_sys']); };
  const memory = async () => Number((await info('memory'))['used_memory']);

  // Workers start on a paused queue, so their start-up is not timed.
  await queue.pause();
  const children: ChildProcess[] = [];
  await Promise.all(Array.from({ length: nodes }, () => new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO, 'dist/bench/instantWorker.js')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`a worker exited ${code}`)));
  })));
  const before = await memory();
  const enqueuer = new Enqueuer(config, queueConfig, queue, redis, keys, new RedisDocumentStore(redis, keys, 3600));
  for (let i = 0; i < DOCS; i++) {
    await enqueuer.enqueue({ bytes: Buffer.from(`Invoice ${i} from Scale Test GmbH\nDate 2026-11-30\nTotal ${i % 997}.50 EUR\nVAT DE123456789`), filename: `scale-${i}.txt`, source: 'bench' });
  }
  const waiting = await memory();
  const cpuBefore = await redisCpu();
  const started = performance.now();
  await queue.resume();
  for (;;) {
    const counts = await queue.getJobCounts('completed', 'failed');
    if (counts.failed) throw new Error(`${counts.failed} documents failed`);
    if ((counts.completed ?? 0) >= DOCS) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await redisCpu()) - cpuBefore;
  const done = await memory();
  const [resultKey] = (await redis.scan('0', 'MATCH', keys.result('*'), 'COUNT', 1000))[1];
  const record = Number(await redis.call('MEMORY', 'USAGE', resultKey!));
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await queue.obliterate({ force: true });
  await queue.close();
  await deleteKeys(redis, prefix);
  await redis.quit();
  return {
    nodes, docsPerS: round(DOCS / seconds, 1), redisCpu: round(cpu / seconds, 3), redisCpuUsPerDoc: round((cpu * 1e6) / DOCS, 0),
    redisBytesPerWaitingDoc: round((waiting - before) / DOCS, 0), redisBytesPerDoneDoc: round((done - before) / DOCS, 0), redisBytesPerRecord: record,
  };
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

const steps: ScaleStep[] = [];
process.stdout.write(`${DOCS} documents per step, ${CONCURRENCY} jobs in flight per node, one Redis (${REDIS_URL.replace(/\/\/[^@]*@/, '//')}), ${os.availableParallelism()} cores\n`);
process.stdout.write('nodes  docs/s  Redis CPU  µs/doc  bytes/waiting doc  bytes/done doc  bytes/record\n');
for (const n of NODES) {
  const s = await step(n);
  steps.push(s);
  process.stdout.write(`${String(n).padStart(5)}  ${String(s.docsPerS).padStart(6)}  ${s.redisCpu.toFixed(2).padStart(9)}  ${String(s.redisCpuUsPerDoc).padStart(6)}  ${String(s.redisBytesPerWaitingDoc).padStart(17)}  ${String(s.redisBytesPerDoneDoc).padStart(14)}  ${String(s.redisBytesPerRecord).padStart(12)}\n`);
}
process.stdout.write(`${JSON.stringify({ docs: DOCS, concurrency: CONCURRENCY, cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? 'unknown', steps })}\n`);
process.exit(0);
