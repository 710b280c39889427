import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getQueue, loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { Enqueuer, waitForDocuments } from '../../src/ingest/index.js';
import { makeValidator } from '../../src/model/index.js';
import { createDocumentQueue, type DocumentQueue } from '../../src/queue/index.js';
import { startWorker, type RunningWorker } from '../../src/worker/index.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { collectReport } from '../../src/cli/commands/report.js';
import type { ResultRecord } from '../../src/pipeline/index.js';
import { CORPUS, corpusFiles, makeHome, REDIS_URL, REPO, tempDir, testModelPath, tokenizerModelPath } from '../helpers/testEnv.js';

const invoice = () => fs.readFileSync(corpusFiles().find((f) => f.endsWith('AmazonWebServices.pdf'))!);
const extract = { pipeline: { mode: 'extract', documentType: 'invoice' } };

/**
 * Two tiers of generated models: the small queues run the byte-vocabulary test model, the large
 * ones a larger model with Qwen2.5's real 151k-token vocabulary. Each small queue escalates on one
 * condition. All workers run in this process, each with its own model.
 */
const queues = {
  always: documentsQueue({ ...extract, escalate: { to: 'large', when: { documentTypes: ['invoice'] } } }),
  doubt: documentsQueue({ ...extract, escalate: { to: 'large', when: { minConfidence: 1, failedChecks: false } } }),
  invalid: documentsQueue({ ...extract, model: { maxTokens: 16, reasks: 0 }, escalate: { to: 'large', when: { failedChecks: false } } }),
  long: documentsQueue({ ...extract, model: { contextSize: 4096, maxTokens: 256 }, escalate: { to: 'large', when: { failedChecks: false } } }),
  fieldwise: documentsQueue({ ...extract, escalate: { to: 'large', fields: 'doubtful', when: { minConfidence: 1, failedChecks: false } } }),
  challenged: documentsQueue({ ...extract, challenge: { queue: 'challenger' }, review: { enabled: true, minConfidence: 0, failedChecks: false, ungroundedFields: false } }),
  contested: documentsQueue({ ...extract, challenge: { queue: 'challenger', onDisagreement: 'escalate' }, escalate: { to: 'large', fields: 'doubtful', when: { failedChecks: false } } }),
  challenger: documentsQueue({ ...extract }),
  doomed: documentsQueue({ ...extract, model: { maxTokens: 16, reasks: 0 }, escalate: { to: 'broken', when: { failedChecks: false } } }),
  weak: documentsQueue({ ...extract, escalate: { to: 'broken', when: { documentTypes: ['invoice'] } } }),
  large: documentsQueue({ ...extract, model: { contextSize: 8192 } }),
  broken: documentsQueue({ ...extract, model: { maxTokens: 16, reasks: 0 } }),
};

let stack: Stack;
const workers: RunningWorker[] = [];
const bull = new Map<string, DocumentQueue>();

beforeAll(async () => {
  stack = await startStack(queues, 'always');
  const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', destination: 'stderr' });
  for (const [name, modelPath] of [['doubt', testModelPath()], ['invalid', testModelPath()], ['fieldwise', testModelPath()], ['challenged', testModelPath()], ['contested', testModelPath()], ['challenger', tokenizerModelPath('llama3')], ['long', testModelPath()], ['doomed', testModelPath()], ['weak', testModelPath()], ['large', tokenizerModelPath('qwen')], ['broken', tokenizerModelPath('qwen')]] as const) {
    workers.push(await startWorker({ config: stack.config, queueName: name, keys: stack.keys, logger, modelPath }));
  }
  for (const name of Object.keys(queues)) bull.set(name, createDocumentQueue(getQueue(stack.config, name), stack.redis, stack.keys));
}, 120_000);
afterAll(async () => {
  for (const w of workers) await w.stop(5_000).catch(() => undefined);
  for (const q of bull.values()) {
    await q.obliterate({ force: true });
    await q.close();
  }
  await stack?.close();
});

/** Enqueues bytes to a queue (through its own enqueuer, as every producer does) and waits for the outcome. */
async function run(queue: string, bytes: Buffer, filename = 'invoice.pdf') {
  const enqueuer = new Enqueuer(stack.config, getQueue(stack.config, queue), bull.get(queue)!, stack.redis, stack.keys, stack.enqueuer.store);
  const outcome = await enqueuer.enqueue({ bytes, filename, source: 'test' });
  const [status] = await waitForDocuments(bull.get(queue)!, stack.redis, stack.keys, [outcome], { timeoutMs: 180_000, pollMs: 100, onSettled: () => undefined });
  return { outcome, status: status! };
}

const invoiceSchema = () => makeValidator(stack.config.prompts.types.get('invoice')!.schema);

describe('model tiers: a doubtful document goes on to the larger model, and its record shows the path', () => {
  it('a document type listed as always large: the final record is the large tier\'s, under the small tier\'s id', async () => {
    const { outcome, status } = await run('always', invoice());
    expect(status.state, JSON.stringify(status)).toBe('done');
    if (status.state !== 'done') return;
    const record = status.record;
    expect(record.documentId).toBe(outcome.documentId);
    expect(record.queue).toBe('always');
    expect(record.model.file).toBe(path.basename(tokenizerModelPath('qwen')));
    expect(invoiceSchema()(record.fields).ok).toBe(true);
    expect(record.tiers!.map((t) => [t.queue, t.model, t.reasons])).toEqual([
      ['always', path.basename(testModelPath()), ['invoice is always read by the next tier']],
      ['large', path.basename(tokenizerModelPath('qwen')), []],
    ]);
    expect(record.tiers![0]!.tokens.generated).toBeGreaterThan(0);
    // Escalations are counted by reason.
    expect(await stack.worker.metrics.registry.getSingleMetricAsString('docsift_escalations_total')).toContain('docsift_escalations_total{queue="always",to="large",reason="document_type"} 1');
    // The same document again: done, nothing new in either tier.
    const large = await bull.get('large')!.getJobCounts('completed', 'waiting', 'active');
    const { outcome: again } = await run('always', invoice(), 'again.pdf');
    expect(again.status).toBe('done');
    expect(await bull.get('large')!.getJobCounts('completed', 'waiting', 'active')).toEqual(large);
    // The large tier's own record is in the store of record only; the outbox has the final one.
    expect(fs.existsSync(path.join(stack.outbox, `${record.documentId}.json`))).toBe(true);
  });

  it('escalates on low confidence, on output invalid after re-asks, and on a document too long for the small context', async () => {
    const long = Buffer.from(Array.from({ length: 40 }, (_, i) => `Invoice INV-88 line ${i + 1}: item ${i} delivered, 12.50 EUR. ${'Terms apply. '.repeat(6)}`).join('\n'));
    const outcomes = await Promise.all([run('doubt', invoice()), run('invalid', invoice()), run('long', long, 'long.txt')]);
    for (const { status } of outcomes) expect(status.state, JSON.stringify(status)).toBe('done');
    const [doubt, invalid, tooLong] = outcomes.map(({ status }) => (status.state === 'done' ? status.record : null));
    expect(doubt!.tiers![0]!.reasons[0]).toMatch(/^confidence below 1: /);
    expect(invalid!.tiers![0]).toMatchObject({ queue: 'invalid', label: null, code: 'MODEL_OUTPUT_INVALID' });
    expect(tooLong!.tiers![0]).toMatchObject({ queue: 'long', code: 'DOCUMENT_TOO_LONG' });
    expect(tooLong!.tiers![0]!.reasons[0]).toMatch(/does not fit this model's context of 4096 tokens whole/);
    expect(tooLong!.chunks).toBe(1);
    for (const r of [doubt, invalid, tooLong]) expect(invoiceSchema()(r!.fields).ok).toBe(true);
  });

  it('fields "doubtful": the large tier re-extracts only the doubted fields, the small tier keeps the rest', async () => {
    const { status } = await run('fieldwise', invoice());
    expect(status.state, JSON.stringify(status)).toBe('done');
    if (status.state !== 'done') return;
    const record = status.record;
    const doubted = record.tiers![1]!.fields!;
    expect(doubted.length).toBeGreaterThan(0);
    expect(record.tiers![1]!.queue).toBe('large');
    // The large tier's job asked for those fields alone, and answered only them.
    const job = (await bull.get('large')!.getJobs(['completed'])).find((j) => j.data.escalation?.from === record.documentId)!;
    expect(job.data.escalation!.fields).toEqual(doubted);
    expect(job.data.documentType).toBe('invoice');
    const large = job.returnvalue as { fields: Record<string, unknown> };
    expect(Object.keys(large.fields).sort()).toEqual([...doubted].sort());
    // The final record has every field of the type: the doubted ones from the large tier.
    const schema = stack.config.prompts.types.get('invoice')!.schema as { properties: Record<string, unknown> };
    expect(Object.keys(record.fields!).sort()).toEqual(Object.keys(schema.properties).sort());
    for (const k of doubted) expect(record.fields![k]).toEqual(large.fields[k]);
    expect(invoiceSchema()(record.fields).ok).toBe(true);
    expect(record.model.file).toBe(path.basename(testModelPath()));
  });

  it('a challenger model answers the same fields: disagreements become null and a review reason, or go to the next tier', async () => {
    const [challenged, contested] = await Promise.all([run('challenged', invoice()), run('contested', invoice())]);
    for (const { status } of [challenged, contested]) expect(status.state, JSON.stringify(status)).toBe('done');
    if (challenged.status.state !== 'done' || contested.status.state !== 'done') return;
    const held = challenged.status.record;
    const llama = path.basename(tokenizerModelPath('llama3'));
    // Two random-weight models agree on little: the verdict lists the fields, each set to null, and review holds the record.
    expect(held.challenge).toMatchObject({ queue: 'challenger', model: llama });
    expect(held.challenge!.disagreed.length).toBeGreaterThan(0);
    for (const k of held.challenge!.disagreed) expect(held.fields![k]).toBeNull();
    expect(held.review?.status).toBe('pending');
    expect(held.review?.reasons).toContain(`the challenger model (${llama}) disagreed on: ${held.challenge!.disagreed.join(', ')}`);
    expect(held.warnings.some((w) => w.startsWith('CHALLENGE_DISAGREED: '))).toBe(true);
    // Both queues asked about the same bytes and type: one challenger job answered both (the second waited for the first's).
    const asked = (await bull.get('challenger')!.getJobs(['completed'])).filter((j) => j.data.challenge);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.data.documentType).toBe('invoice');
    expect([held.documentId, contested.status.record.documentId]).toContain(asked[0]!.data.challenge!.from);
    // onDisagreement "escalate": the disagreeing fields go to the large tier, which answers them.
    const other = contested.status.record;
    expect(other.tiers!.map((t) => t.queue)).toEqual(['contested', 'large']);
    expect(other.tiers![0]!.reasons).toEqual([`the challenger (${llama}) disagreed on ${other.challenge!.disagreed.join(', ')}`]);
    expect(other.tiers![1]!.fields).toEqual(other.challenge!.disagreed);
    expect(invoiceSchema()(other.fields).ok).toBe(true);
  });

  it('when the next tier fails too: a doubtful result stands with a warning; a failure fails with the next tier\'s code', async () => {
    const [weak, doomed] = await Promise.all([run('weak', invoice()), run('doomed', invoice())]);
    expect(weak.status.state).toBe('done');
    if (weak.status.state === 'done') {
      expect(weak.status.record.model.file).toBe(path.basename(testModelPath()));
      expect(weak.status.record.warnings.some((w) => w.startsWith('ESCALATION_FAILED: MODEL_OUTPUT_INVALID'))).toBe(true);
      expect(weak.status.record.tiers!.map((t) => [t.queue, t.code ?? null])).toEqual([['weak', null], ['broken', 'MODEL_OUTPUT_INVALID']]);
    }
    expect(doomed.status).toMatchObject({ state: 'failed', code: 'MODEL_OUTPUT_INVALID' });
    if (doomed.status.state === 'failed') expect(doomed.status.message).toMatch(/the next tier \(broken\) failed too/);
  });

  it('docsift report: documents, tokens and model-seconds per tier and node, each document once, priced as an API would bill them', async () => {
    const report = await collectReport(stack.redis, stack.keys, new Date(Date.now() - 3_600_000));
    const finals = [];
    for (const key of await stack.redis.keys(stack.keys.result('*'))) {
      const r = JSON.parse((await stack.redis.get(key))!) as ResultRecord;
      if (!r.for) finals.push(r);
      else expect(['escalation', 'challenge']).toContain(r.for.as);
    }
    expect(report.documents).toBe(finals.length);
    expect(report.escalated).toBe(finals.filter((r) => r.tiers).length);
    const row = (queue: string) => report.rows.find((r) => r.queue === queue)!;
    expect(row('always')).toMatchObject({ node: stack.config.env.DOCSIFT_NODE_NAME, documents: 1 });
    expect(row('large').documents).toBeGreaterThanOrEqual(5);
    expect(row('challenger').documents).toBe(2);
    // Every tier ran on this node; a tier that failed ('broken') is counted, with no node or tokens to its name (its failure record has neither).
    for (const r of report.rows.filter((x) => x.queue !== 'broken')) expect(r.node, r.queue).toBe(stack.config.env.DOCSIFT_NODE_NAME);
    // Tokens spent on an answer that failed validation count too; 'long' went on before its model ran.
    for (const r of report.rows.filter((x) => x.queue !== 'broken' && x.queue !== 'long')) expect(r.tokensIn + r.tokensOut, r.queue).toBeGreaterThan(0);
    expect(row('long')).toMatchObject({ documents: 1, tokensIn: 0, tokensOut: 0 });
    expect(report.rows.filter((x) => x.queue === 'broken')).toEqual([{ queue: 'broken', node: 'unknown', documents: 1, tokensIn: 0, tokensOut: 0, modelSeconds: 0 }]);
    const cli = spawnSync(process.execPath, [path.join(REPO, 'dist', 'src', 'cli', 'main.js'), 'report', '--since', '1h', '--json', '--input-price', '0.15', '--output-price', '0.6'], {
      env: { ...process.env, DOCSIFT_HOME: stack.config.home, DOCSIFT_PREFIX: stack.config.env.DOCSIFT_PREFIX, REDIS_URL }, encoding: 'utf8',
    });
    expect(cli.status, cli.stderr).toBe(0);
    const printed = JSON.parse(cli.stdout) as { documents: number; cost: number; rows: Array<{ tokensIn: number; tokensOut: number; cost: number }> };
    expect(printed.documents).toBe(report.documents);
    const expected = printed.rows.reduce((n, r) => n + (r.tokensIn * 0.15 + r.tokensOut * 0.6) / 1e6, 0);
    expect(printed.cost).toBeCloseTo(expected, 2);
  });

  it('docsift eval --results scores per tier: what each read and finished, its accuracy and cost per document, the share escalated', async () => {
    // The tiered records of the corpus invoice, as `docsift enqueue --wait --json` prints them, scored against its label.
    const dir = tempDir('tier-eval');
    fs.copyFileSync(path.join(CORPUS, 'AmazonWebServices.pdf'), path.join(dir, 'AmazonWebServices.pdf'));
    fs.copyFileSync(path.join(CORPUS, 'AmazonWebServices.json'), path.join(dir, 'AmazonWebServices.json'));
    const { outcome } = await run('always', invoice());
    const record = JSON.parse((await stack.redis.get(stack.keys.result(outcome.documentId)))!) as ResultRecord;
    fs.writeFileSync(path.join(dir, 'results.jsonl'), `${JSON.stringify({ ...record, filename: 'AmazonWebServices.pdf' })}\n`);
    const cli = spawnSync(process.execPath, [path.join(REPO, 'dist', 'src', 'cli', 'main.js'), 'eval', dir, '--queue', 'always', '--results', path.join(dir, 'results.jsonl'), '--report', path.join(dir, 'report.json')], {
      env: { ...process.env, DOCSIFT_HOME: stack.config.home, DOCSIFT_PREFIX: stack.config.env.DOCSIFT_PREFIX, REDIS_URL }, encoding: 'utf8',
    });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('100.0% of documents went on to a larger tier');
    const tiers = (JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as { tiers: { tiers: Array<{ queue: string; read: number; final: number; tokensPerDocument: number }> } }).tiers.tiers;
    expect(tiers.map((t) => [t.queue, t.read, t.final])).toEqual([['always', 1, 0], ['large', 1, 1]]);
    for (const t of tiers) expect(t.tokensPerDocument).toBeGreaterThan(0);
  });

  it('refuses tiers that go round in a circle or name no queue, naming the file and key', () => {
    const circle = makeHome({ a: documentsQueue({ escalate: { to: 'b' } }), b: documentsQueue({ escalate: { to: 'a' } }) });
    expect(() => loadConfig({ DOCSIFT_HOME: circle, REDIS_URL })).toThrow(/a\.json: escalate\.to: the tiers go round in a circle: a -> b -> a/);
    const nowhere = makeHome({ a: documentsQueue({ escalate: { to: 'huge' } }) });
    expect(() => loadConfig({ DOCSIFT_HOME: nowhere, REDIS_URL })).toThrow(/escalate\.to: no such queue "huge"/);
  });
});
