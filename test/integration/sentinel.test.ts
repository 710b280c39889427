import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { documentsQueue } from '../helpers/stack.js';
import { freePort } from '../helpers/redisServer.js';
import { startSentinelGroup } from '../helpers/redisTopologies.js';
import { makeHome, REPO, tempDir, testModelPath, uniquePrefix } from '../helpers/testEnv.js';
import { spawnDocsift, spawnWorker } from '../helpers/workers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe('Redis with Sentinel', () => {
  it('the primary killed -9 mid-run: after the failover every document ends done exactly once and the API answers again', async () => {
    const group = await startSentinelGroup();
    cleanups.push(() => group.stop());
    const outbox = tempDir('sentinel-outbox');
    const home = makeHome({ documents: documentsQueue({ concurrency: 2, outputs: { outbox: { dir: outbox } }, worker: { lockDurationMs: 5000, stalledIntervalMs: 2000, maxStalledCount: 5 } }) });
    const env = {
      ...process.env, REDIS_URL: `redis://${group.master}`, REDIS_SENTINELS: group.sentinelList,
      DOCSIFT_HOME: home, DOCSIFT_PREFIX: uniquePrefix('sentinel'), DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info',
    };
    const workers = [await spawnWorker(env), await spawnWorker(env)];
    for (const w of workers) cleanups.push(() => w.stop('SIGKILL'));
    const base = `http://127.0.0.1:${await freePort()}`;
    const api = await spawnDocsift(['api', '--port', new URL(base).port, '--no-board'], env, 'api ready');
    cleanups.push(() => api.stop('SIGKILL'));

    /** One upload; the API's answer, or what fetch threw. */
    const post = async (i: number) => {
      const form = new FormData();
      form.append('file', new Blob([`Invoice ${i}: sentinel document number ${i}, amount ${i}.50 EUR`]), `sentinel-${i}.txt`);
      const res = await fetch(`${base}/v1/documents`, { method: 'POST', body: form });
      return { status: res.status, body: (await res.json()) as { documents?: Array<{ documentId: string }>; error?: { code: string } } };
    };
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) {
      const res = await post(i);
      expect(res.status).toBe(202);
      ids.push(res.body.documents![0]!.documentId);
    }
    const done = () => workers.reduce((n, w) => n + (w.log().match(/"msg":"document done"/g) ?? []).length, 0);
    while (done() < 3) await sleep(20);

    // docsift doctor sees the group: the primary, its replica, and that the sentinels can fail over.
    const doctor = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'doctor'], { env, encoding: 'utf8', timeout: 120_000 });
    expect(doctor.stdout).toContain(`ok    redis topology: Sentinel master "docsift": primary 127.0.0.1:${group.primary.port}, 1 replica(s), 3 of 3 sentinels answer; OK 3 usable Sentinels`);

    const before = await group.primaryPort();
    expect(before).toBe(group.primary.port);
    await group.primary.kill('SIGKILL');
    const killedAt = Date.now();

    // Uploads during the failover are refused with a code (never half-stored); then they work again.
    const refused = new Set<string>();
    for (let i = 16; i < 24; i++) {
      for (;;) {
        const res = await post(i);
        if (res.status === 202) {
          ids.push(res.body.documents![0]!.documentId);
          break;
        }
        refused.add(`${res.status} ${res.body.error?.code}`);
        if (Date.now() - killedAt > 60_000) throw new Error(`the API did not answer again: ${[...refused].join(', ')}\n${api.log()}`);
        await sleep(200);
      }
    }
    expect(await group.primaryPort()).toBe(group.replica.port);
    // The CLI finds the new primary through the sentinels too.
    const file = path.join(tempDir('sentinel-cli'), 'after.txt');
    fs.writeFileSync(file, 'Invoice 99: enqueued by the CLI after the failover, 9.90 EUR');
    const cli = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'enqueue', file, '--json'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(cli.status, cli.stderr).toBe(0);
    ids.push((JSON.parse(cli.stdout) as { documentId: string }).documentId);
    for (const r of refused) expect(r).toBe('503 REDIS_UNAVAILABLE');

    const deadline = Date.now() + 120_000;
    const states = new Map<string, string>();
    while (ids.some((id) => states.get(id) !== 'done')) {
      if (Date.now() > deadline) throw new Error(`not done: ${JSON.stringify([...states])}`);
      for (const id of ids) {
        if (states.get(id) === 'done') continue;
        const res = await fetch(`${base}/v1/documents/${id}`);
        if (res.ok) states.set(id, ((await res.json()) as { state: string }).state);
      }
      await sleep(200);
    }
    // Exactly once: one record per document in the outbox, and one completion per document across the workers.
    expect(fs.readdirSync(outbox).filter((f) => f.endsWith('.json')).sort()).toEqual([...new Set(ids)].map((id) => `${id}.json`).sort());
    // One completion per document. The one exception the design allows: a record acknowledged by the
    // primary in its last moment and never replicated, so the job runs once more (docs/SCALING.md).
    const completions = new Map<string, number[]>();
    for (const line of workers.flatMap((w) => w.log().split('\n'))) {
      if (!line.includes('"msg":"document done"')) continue;
      const entry = JSON.parse(line) as { documentId: string; time: number };
      completions.set(entry.documentId, [...(completions.get(entry.documentId) ?? []), entry.time]);
    }
    expect([...completions.keys()].sort()).toEqual([...new Set(ids)].sort());
    for (const [id, times] of completions) {
      if (times.length === 1) continue;
      expect(times.length, id).toBe(2);
      expect(Math.min(...times), `${id} done twice, first at ${Math.min(...times) - killedAt} ms from the kill`).toBeGreaterThan(killedAt - 1000);
      expect(Math.min(...times)).toBeLessThanOrEqual(killedAt);
    }
    // A run whose lock lapsed in the failover stopped and delivered nothing (the other worker did).
    const lockLost = workers.reduce((n, w) => n + (w.log().match(/"msg":"lock lost/g) ?? []).length, 0);
    console.log(`sentinel: ${lockLost} run(s) stopped for a lost lock, ${[...completions.values()].filter((t) => t.length > 1).length} document(s) done twice`);
    for (const w of workers) expect(w.process.exitCode).toBeNull(); // followed the failover, never restarted
    expect(api.process.exitCode).toBeNull();
  }, 240_000);
});
