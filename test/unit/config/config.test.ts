import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EnvSchema, loadConfig, parseEnv, pipelineVersion, getQueue } from '../../../src/config/index.js';
import { envHelp } from '../../../src/config/env.js';
import { ConfigError } from '../../../src/infra/errors.js';
import { describeRedis, redisTarget, S3Bucket, topologyOf } from '../../../src/queue/index.js';
import { textLimits } from '../../../src/text/index.js';
import { makeHome, REPO } from '../../helpers/testEnv.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const validQueue = { pipeline: { mode: 'classify-extract' } };

describe('configuration', () => {
  it('loads the shipped queues and prompts with their defaults', () => {
    const config = loadConfig({ DOCSIFT_HOME: REPO });
    expect([...config.queues.keys()]).toContain('documents');
    expect(config.prompts.classify.labels).toEqual(['invoice', 'receipt', 'purchase_order', 'contract', 'other']);
    expect([...config.prompts.types.keys()].sort()).toEqual(['contract', 'invoice', 'purchase_order', 'receipt']);
    expect(config.env.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(getQueue(config, 'documents').limits)).toBe(true);
  });

  it('fills every default of an absent block from the option itself', () => {
    const q = getQueue(loadConfig({ DOCSIFT_HOME: makeHome({ minimal: validQueue }) }), 'minimal');
    expect(q.model).toMatchObject({ contextSize: 8192, maxTokens: 1024, reasks: 1, chunking: { enabled: true, maxChunks: 16, overlapChars: 400 } });
    expect(q.limits).toEqual({ maxBytes: 50 * 1024 * 1024, maxPages: 500, maxRows: 5000, maxAttachments: 50, maxMailDepth: 2, textTimeoutMs: 120_000, textMemoryMb: 1024 });
    expect(q.retention).toEqual({ completed: 1000, failed: 10000, recordSeconds: 30 * 24 * 3600, deleteBytesWhenFinal: true });
    expect(q.worker).toEqual({ lockDurationMs: 30_000, stalledIntervalMs: 30_000, maxStalledCount: 1 });
    // A partial block keeps the other defaults.
    const partial = getQueue(loadConfig({ DOCSIFT_HOME: makeHome({ partial: { ...validQueue, model: { chunking: { maxChunks: 4 } } } }) }), 'partial');
    expect(partial.model.chunking).toEqual({ enabled: true, maxChunks: 4, overlapChars: 400 });
  });

  it('describes every environment variable in --help, with the schema\'s default', () => {
    const lines = envHelp().split('\n');
    expect(lines).toHaveLength(Object.keys(EnvSchema.shape).length);
    for (const [name, schema] of Object.entries(EnvSchema.shape)) expect(schema.description, name).toMatch(/\w/);
    expect(lines.find((l) => l.includes('DOCSIFT_PREFIX'))).toMatch(/prefix of every Redis key \[docsift\]$/);
    expect(lines.find((l) => l.includes('DOCSIFT_THREADS'))).toMatch(/\[cores - 1\]$/);
  });

  it('names the key of a bad environment value', () => {
    const err = configError(() => parseEnv({ REDIS_URL: 'http://localhost:6379' }));
    expect(err.file).toBe('environment');
    expect(err.key).toBe('REDIS_URL');
    expect(configError(() => parseEnv({ DOCSIFT_THREADS: 'many' })).key).toBe('DOCSIFT_THREADS');
  });

  it('reads a Sentinel or Cluster topology, naming the key of a wrong value', () => {
    const sentinel = parseEnv({ REDIS_URL: 'redis://:pw-9xY@docsift/2', REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b:26380,[fd00::1]:26379' });
    expect(sentinel.REDIS_SENTINELS).toEqual([{ host: '10.0.0.1', port: 26379 }, { host: 'sentinel-b', port: 26380 }, { host: 'fd00::1', port: 26379 }]);
    expect(describeRedis(redisTarget(sentinel))).toBe('Sentinel master "docsift" via 10.0.0.1:26379,sentinel-b:26380,fd00::1:26379');
    expect(topologyOf(redisTarget(parseEnv({ REDIS_CLUSTER_NODES: 'a:7000,b:7001' })))).toBe('cluster');
    expect(topologyOf(redisTarget(parseEnv({})))).toBe('standalone');
    expect(configError(() => parseEnv({ REDIS_SENTINELS: '10.0.0.1' })).key).toMatch(/^REDIS_SENTINELS/);
    expect(configError(() => parseEnv({ REDIS_SENTINELS: 'a:1', REDIS_CLUSTER_NODES: 'b:2' })).key).toBe('REDIS_CLUSTER_NODES');
    expect(configError(() => parseEnv({ REDIS_CLUSTER_NODES: 'b:2', REDIS_URL: 'redis://b:2/3' })).message).toContain('only database 0');
    expect(configError(() => parseEnv({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_PASSWORD: 'change-me' })).key).toBe('REDIS_SENTINEL_PASSWORD');
    expect(configError(() => parseEnv({ REDIS_URL: 'redis://[bad', REDIS_SENTINELS: 'a:1' })).key).toBe('REDIS_URL');
    expect(configError(() => parseEnv({ DOCSIFT_STORE: 's3' })).key).toBe('DOCSIFT_S3_BUCKET');
    expect(configError(() => parseEnv({ DOCSIFT_S3_BUCKET: 'Bad_Bucket' })).key).toBe('DOCSIFT_S3_BUCKET');
    expect(configError(() => parseEnv({ DOCSIFT_S3_SECRET_ACCESS_KEY: 'change-me-now' })).key).toBe('DOCSIFT_S3_SECRET_ACCESS_KEY');
  });

  it('an S3 bucket needs credentials, and a secret file holding a placeholder is refused', () => {
    const base = { DOCSIFT_S3_BUCKET: 'docsift', DOCSIFT_S3_ENDPOINT: 'http://127.0.0.1:9000' };
    expect(configError(() => S3Bucket.fromEnv(parseEnv(base))).key).toBe('DOCSIFT_S3_ACCESS_KEY_ID');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-s3-')), 'secret');
    fs.writeFileSync(file, 'change-me\n');
    expect(configError(() => S3Bucket.fromEnv(parseEnv({ ...base, DOCSIFT_S3_ACCESS_KEY_ID: 'docsift', DOCSIFT_S3_SECRET_ACCESS_KEY_FILE: file }))).message).toContain('placeholder');
    fs.writeFileSync(file, 'q8F2xk0Vn4TzL1pR\n');
    const bucket = S3Bucket.fromEnv(parseEnv({ ...base, DOCSIFT_S3_ACCESS_KEY_ID: 'docsift', DOCSIFT_S3_SECRET_ACCESS_KEY_FILE: file }))!;
    expect(bucket.documentKey('a'.repeat(64))).toBe(`docsift/doc/${'a'.repeat(64)}`);
    expect(bucket.documentSha(`docsift/doc/${'a'.repeat(64)}`)).toBe('a'.repeat(64));
    for (const bad of ['docsift/doc/../secret', `other/doc/${'a'.repeat(64)}`, `docsift/doc/${'A'.repeat(64)}`]) expect(bucket.documentSha(bad), bad).toBeNull();
    bucket.close();
    expect(S3Bucket.fromEnv(parseEnv({}))).toBeUndefined();
  });

  it('refuses placeholder secrets (what the example files ship), naming the key', () => {
    const placeholders: Record<string, string> = {
      DOCSIFT_WEBHOOK_SECRET: 'change-me-shared-with-the-receiver',
      DOCSIFT_CALLBACK_SECRET: 'replace-me-with-a-random-string',
      DOCSIFT_BOARD_PASSWORD: 'change-me-too-please',
      DOCSIFT_API_TOKENS: 'a-real-token-0123456789abc,change-me-to-a-long-random-token',
      REDIS_URL: 'redis://:CHANGE_ME@redis:6379',
      DOCSIFT_DATABASE_URL: 'postgres://docsift:your-password@db/docsift',
    };
    for (const [key, value] of Object.entries(placeholders)) {
      const err = configError(() => parseEnv({ [key]: value }));
      expect(err.key, key).toMatch(new RegExp(`^${key}`));
      expect(err.message, key).toContain('placeholder');
    }
    // Delivery allowlist entries are checked when the configuration is read, not at the first delivery.
    for (const bad of ['10.0.0.0/99', 'bad host', 'https://erp.example.com', '10.0.0.1/8/2']) {
      expect(configError(() => parseEnv({ DOCSIFT_CALLBACK_HOSTS: bad })).key, bad).toMatch(/^DOCSIFT_CALLBACK_HOSTS/);
    }
    expect(parseEnv({ DOCSIFT_CALLBACK_HOSTS: 'ERP.example.com, *.corp.example,10.1.0.0/16,fd00::/8,127.0.0.1' }).DOCSIFT_CALLBACK_HOSTS)
      .toEqual(['erp.example.com', '*.corp.example', '10.1.0.0/16', 'fd00::/8', '127.0.0.1']);
    // Real random values pass.
    expect(parseEnv({ DOCSIFT_WEBHOOK_SECRET: 'f3Kq9xT2mV7pL0sZ', REDIS_URL: 'rediss://:s3cr3t-Xy9@redis:6380' }).REDIS_URL).toBe('rediss://:s3cr3t-Xy9@redis:6380');
  });

  it('names the file and key of a bad queue value', () => {
    const home = makeHome({ documents: { ...validQueue, concurrency: 0 } });
    const err = configError(() => loadConfig({ DOCSIFT_HOME: home }));
    expect(err.file).toBe(path.join(home, 'queues', 'documents.json'));
    expect(err.key).toBe('concurrency');
    expect(err.message).toContain('documents.json: concurrency:');
  });

  it('refuses unknown queue keys, a name that differs from the file, and unknown document types', () => {
    expect(configError(() => loadConfig({ DOCSIFT_HOME: makeHome({ q: { ...validQueue, limits: { maxPage: 3 } } }) })).key).toBe('limits');
    const home = makeHome({ q: validQueue });
    fs.writeFileSync(path.join(home, 'queues', 'q.json'), JSON.stringify({ name: 'other', ...validQueue }));
    expect(configError(() => loadConfig({ DOCSIFT_HOME: home })).key).toBe('name');
    const err = configError(() => loadConfig({ DOCSIFT_HOME: makeHome({ q: { pipeline: { mode: 'extract', documentType: 'payslip' } } }) }));
    expect(err.key).toBe('pipeline.documentType');
  });

  it('refuses schema keywords the model grammar cannot enforce, naming the path', () => {
    const home = makeHome({ q: validQueue });
    const file = path.join(home, 'prompts', 'invoice', 'schema.json');
    const schema = JSON.parse(fs.readFileSync(file, 'utf8'));
    schema.properties.iban = { type: 'string', pattern: '^[A-Z]{2}' };
    fs.writeFileSync(file, JSON.stringify(schema));
    const err = configError(() => loadConfig({ DOCSIFT_HOME: home }));
    expect(err.file).toBe(file);
    expect(err.key).toBe('properties.iban.pattern');
  });

  it('refuses rules naming unknown fields and unknown normalisers, naming file and key', () => {
    const home = makeHome({ q: validQueue });
    const rules = path.join(home, 'prompts', 'invoice', 'rules.json');
    fs.writeFileSync(rules, JSON.stringify([{ rule: 'fields_sum', fields: ['amount_untaxed', 'vat'], equals: 'amount' }]));
    const err = configError(() => loadConfig({ DOCSIFT_HOME: home }));
    expect([err.file, err.key]).toEqual([rules, '0.fields']);
    fs.writeFileSync(rules, JSON.stringify([{ rule: 'luhn', field: 'iban' }]));
    expect(configError(() => loadConfig({ DOCSIFT_HOME: home })).file).toBe(rules);
    fs.rmSync(rules);
    const schemaFile = path.join(home, 'prompts', 'invoice', 'schema.json');
    const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));
    schema.properties.amount['x-normalize'] = 'money';
    fs.writeFileSync(schemaFile, JSON.stringify(schema));
    expect(configError(() => loadConfig({ DOCSIFT_HOME: home })).key).toBe('properties.amount.x-normalize');
  });

  it('refuses a classify label without a prompt folder, and prompts without a version', () => {
    const home = makeHome({ q: validQueue });
    const classify = path.join(home, 'prompts', 'classify', 'prompt.md');
    fs.writeFileSync(classify, fs.readFileSync(classify, 'utf8').replace('contract, other', 'contract, payslip, other'));
    expect(configError(() => loadConfig({ DOCSIFT_HOME: home })).message).toContain('payslip');
    const home2 = makeHome({ q: validQueue });
    const invoice = path.join(home2, 'prompts', 'invoice', 'prompt.md');
    fs.writeFileSync(invoice, fs.readFileSync(invoice, 'utf8').replace(/^version: .*$/m, ''));
    const err = configError(() => loadConfig({ DOCSIFT_HOME: home2 }));
    expect([err.file, err.key]).toEqual([invoice, 'version']);
  });

  it('changes the pipeline version when a prompt changes, not when the install moves', () => {
    const a = loadConfig({ DOCSIFT_HOME: makeHome({ q: validQueue }) });
    const b = loadConfig({ DOCSIFT_HOME: makeHome({ q: validQueue }) });
    expect(pipelineVersion(a, getQueue(a, 'q'))).toBe(pipelineVersion(b, getQueue(b, 'q')));
    const home = makeHome({ q: validQueue });
    const file = path.join(home, 'prompts', 'receipt', 'prompt.md');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('version: 1', 'version: 2'));
    const c = loadConfig({ DOCSIFT_HOME: home });
    expect(pipelineVersion(c, getQueue(c, 'q'))).not.toBe(pipelineVersion(a, getQueue(a, 'q')));
  });

  it('pdf.engine: pdf.js by default, keeping the version; poppler is part of it; others refused by key', () => {
    const version = (pdf?: unknown) => {
      const config = loadConfig({ DOCSIFT_HOME: makeHome({ q: pdf ? { ...validQueue, pdf } : validQueue }) });
      return pipelineVersion(config, getQueue(config, 'q'));
    };
    expect(loadConfig({ DOCSIFT_HOME: makeHome({ q: validQueue }) }).queues.get('q')!.pdf.engine).toBe('pdf.js');
    expect(version({ engine: 'pdf.js' })).toBe(version());
    expect(version({ engine: 'poppler' })).not.toBe(version());
    // What the text stage is handed (workers, extract-text, export-training all take textLimits).
    const poppler = loadConfig({ DOCSIFT_HOME: makeHome({ q: { ...validQueue, pdf: { engine: 'poppler' } } }) });
    expect(textLimits(getQueue(poppler, 'q')).pdfEngine).toBe('poppler');
    const err = configError(() => loadConfig({ DOCSIFT_HOME: makeHome({ q: { ...validQueue, pdf: { engine: 'mupdf' } } }) }));
    expect(err.key).toBe('pdf.engine');
  });
});
