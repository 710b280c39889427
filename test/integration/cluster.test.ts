import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisClient } from '../../src/ingest/client/index.js';
import { scanKeys } from '../../src/queue/index.js';
import { makeEml } from '../helpers/mail.js';
import { freePort } from '../helpers/redisServer.js';
import { startRedisCluster } from '../helpers/redisTopologies.js';
import { documentsQueue } from '../helpers/stack.js';
import { corpusFiles, makeHome, REPO, tempDir, testModelPath, uniquePrefix } from '../helpers/testEnv.js';
import { spawnDocsift } from '../helpers/workers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe('Redis Cluster', () => {
  it('pipeline, API, watched folder, flows between queues and the client on three primaries: a queue group in one slot, groups on different nodes', async () => {
    const cluster = await startRedisCluster();
    cleanups.push(() => cluster.stop());
    const extract = { pipeline: { mode: 'extract', documentType: 'invoice' } };
    // documents hands every invoice on to large (a BullMQ flow between two queues: one flow group,
    // one slot); archive is a group of its own. Their tags hash to different nodes.
    const home = makeHome({
      documents: documentsQueue({ ...extract, escalate: { to: 'large', when: { documentTypes: ['invoice'] } } }),
      large: documentsQueue(extract),
      archive: documentsQueue(),
    });
    const prefix = uniquePrefix('cluster');
    const env = {
      ...process.env, REDIS_CLUSTER_NODES: cluster.nodeList, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix,
      DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info',
    };
    const watchDir = tempDir('cluster-watch');
    const port = await freePort();
    const upDir = tempDir('cluster-up');
    const up = await spawnDocsift(['up', '--port', String(port), '--queue', 'documents', '--watch-dir', watchDir], env, 'docsift is up', { cwd: upDir });
    cleanups.push(() => up.stop('SIGKILL'));
    const processes = [up];
    for (const queue of ['large', 'archive']) {
      const worker = await spawnDocsift(['worker', '--queue', queue, '--metrics-port', '0'], env, 'worker ready');
      cleanups.push(() => worker.stop('SIGKILL'));
      processes.push(worker);
    }
    const base = `http://127.0.0.1:${port}`;
    const post = async (file: string, bytes: Buffer, queue: string) => {
      const form = new FormData();
      form.append('queue', queue);
      form.append('file', new Blob([new Uint8Array(bytes)]), file);
      const res = await fetch(`${base}/v1/documents`, { method: 'POST', body: form });
      expect(res.status, await res.clone().text()).toBe(202);
      return ((await res.json()) as { documents: Array<{ documentId: string }> }).documents[0]!.documentId;
    };
    const [pdf1, pdf2] = corpusFiles();
    const invoices = [await post(path.basename(pdf1!), fs.readFileSync(pdf1!), 'documents'), await post(path.basename(pdf2!), fs.readFileSync(pdf2!), 'documents')];
    const archived = await post('note.txt', Buffer.from('Receipt 77: cluster archive note, 12.40 EUR'), 'archive');
    // A mail dropped in the watched folder: a flow inside its queue (the mail and its parts).
    fs.mkdirSync(path.join(watchDir, 'inbox'), { recursive: true });
    fs.writeFileSync(path.join(watchDir, 'inbox', 'supplier.eml'), await makeEml({
      from: 'billing@supplier.test', to: ['ap@docsift.test'], subject: 'Invoice 4471', text: 'Please find the invoice attached.',
      attachments: [{ filename: 'invoice.pdf', content: fs.readFileSync(pdf1!), contentType: 'application/pdf' }],
    }));
    // The typed client on its own Cluster connection, following the key layout workers publish.
    const connection = new Cluster(cluster.nodeList.split(',').map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { redisOptions: { maxRetriesPerRequest: null } });
    cleanups.push(() => Promise.resolve(connection.disconnect()));
    const client = await RedisClient.connect({ connection, prefix });
    const viaClient = await client.enqueue(Buffer.from('Receipt 78: enqueued by the client, 3.10 EUR'), { filename: 'client.txt', queue: 'archive' });
    expect((await client.waitForResult(viaClient.documentId, { timeoutMs: 120_000 })).queue).toBe('archive');

    const deadline = Date.now() + 180_000;
    for (const id of [...invoices, archived]) {
      for (;;) {
        const res = await fetch(`${base}/v1/documents/${id}`);
        const state = res.ok ? ((await res.json()) as { state: string }).state : `HTTP ${res.status}`;
        if (state === 'done') break;
        if (state === 'failed' || Date.now() > deadline) throw new Error(`${id}: ${state}\n${up.log()}`);
        await sleep(200);
      }
    }
    for (const id of invoices) {
      const record = (await (await fetch(`${base}/v1/documents/${id}/result`)).json()) as { tiers: Array<{ queue: string }> };
      expect(record.tiers.map((t) => t.queue)).toEqual(['documents', 'large']);
    }
    const done = path.join(watchDir, 'done');
    while (!(fs.existsSync(done) && fs.readdirSync(done).includes('supplier.eml.result.json'))) {
      if (Date.now() > deadline || fs.existsSync(path.join(watchDir, 'failed', 'supplier.eml'))) throw new Error(`the mail did not end done\n${up.log()}`);
      await sleep(200);
    }
    const mail = JSON.parse(fs.readFileSync(path.join(done, 'supplier.eml.result.json'), 'utf8')) as { children: Array<{ status: string }> };
    expect(mail.children.map((c) => c.status)).toEqual(['done', 'done']);

    // No attempt failed on the way (a cross-slot script error is retried, and would hide here).
    for (const p of processes) expect(p.log()).not.toMatch(/"msg":"document failed"|CROSSSLOT|non local key/);

    // Where the keys are: each queue group's BullMQ keys on one node, the two groups on different
    // nodes, and docsift's own keys (bytes, records by id) on every node.
    const nodeOf = new Map<string, number>();
    const perNode = new Map<number, number>();
    for await (const { keys, node } of scanKeys(connection, `${prefix}:*`)) {
      for (const k of keys) nodeOf.set(k, node.options.port!);
      perNode.set(node.options.port!, (perNode.get(node.options.port!) ?? 0) + keys.length);
    }
    const meta = (group: string, queue: string) => nodeOf.get(`${prefix}:bull:{${group}}:${queue}:meta`);
    expect(meta('documents', 'documents')).toBeDefined();
    expect(meta('documents', 'large')).toBe(meta('documents', 'documents'));
    expect(meta('archive', 'archive')).toBeDefined();
    expect(meta('archive', 'archive')).not.toBe(meta('documents', 'documents'));
    expect([...perNode.keys()].length).toBe(3);

    // Bull Board (in docsift up) reads every queue on the Cluster.
    const boardPassword = fs.readFileSync(path.join(upDir, 'data', 'secrets', 'board-password'), 'utf8').trim();
    const board = await fetch(`${base}/board/api/queues`, { headers: { authorization: `Basic ${Buffer.from(`docsift:${boardPassword}`).toString('base64')}` } });
    expect(board.status).toBe(200);
    const boardQueues = ((await board.json()) as { queues: Array<{ name: string; counts: Record<string, number> }> }).queues;
    expect(boardQueues.map((q) => q.name).sort()).toEqual(['_webhooks', 'archive', 'documents', 'large']);
    expect(boardQueues.find((q) => q.name === 'documents')!.counts.completed).toBeGreaterThan(0);

    // docsift report reads every primary's records (SCAN per node).
    const report = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'report', '--since', '1h', '--json'], { env, encoding: 'utf8', timeout: 120_000 });
    expect(report.status, report.stderr).toBe(0);
    // Through both tiers: 2 invoices and the mail's body (its attachment is the first invoice's
    // bytes: the same document); the mail itself and 2 archive documents in one tier.
    expect(JSON.parse(report.stdout)).toMatchObject({ documents: 6, escalated: 3 });

    // docsift doctor checks the Cluster it is connected to, every primary, and where each queue group is.
    const doctor = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'doctor'], { env, encoding: 'utf8', timeout: 120_000 });
    expect(doctor.status, doctor.stdout).toBe(0);
    expect(doctor.stdout).toContain('ok    redis topology: Cluster: 3 primaries, 0 replica(s), all 16384 slots served');
    expect(doctor.stdout).toContain('warn  redis topology: no replicas');
    expect(doctor.stdout).toContain(`ok    redis queue slots: archive → 127.0.0.1:${meta('archive', 'archive')} (slot 13758); documents+large → 127.0.0.1:${meta('documents', 'documents')} (slot 2695)`);
    expect(doctor.stdout.match(/ok    redis eviction 127\.0\.0\.1:\d+: maxmemory-policy noeviction/g)).toHaveLength(3);

    await client.close();
  }, 300_000);
});
