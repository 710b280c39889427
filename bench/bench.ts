/**
 * npm run bench [-- --quick] [-- --sequences 1,2,4,8] [-- --docs N] [-- --shape smollm2-135m|qwen2.5-0.5b|qwen2.5-1.5b]
 *               [-- --tokenizer qwen|llama3] [-- --skip queue,pdf,ocr,rss] [-- --only queue|rss|ocr]
 *
 * Measures, in one run on this machine, how close docsift gets to what the model alone can do,
 * and what each trick buys. docs/BENCHMARKS.md explains every figure. Prints a table, writes the
 * full results under bench/results/, and prints one JSON object as its last line.
 * Ratios within one run are the point: these machines are noisy, absolute numbers less so.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { getQueue, libraryMissing, loadConfig, type Config, type QueueConfig } from '../src/config/index.js';
import { Enqueuer, waitForDocuments } from '../src/ingest/index.js';
import { createLogger } from '../src/infra/logger.js';
import { Metrics } from '../src/infra/metrics.js';
import { answerGbnf, compileAnswer } from '../src/model/answerGrammar.js';
import { loadLlama, makeLlamaModel, ModelEngine, readHfTokenizer, toGrammarSchema, type DecoderKind, type Engine, type LlamaShape } from '../src/model/index.js';
import { decodeJson } from '../src/model/decoder.js';
import { createDeliveryQueue, createOutputs } from '../src/outputs/index.js';
import { documentText, Pipeline, renderSystemPrompt, type ResultRecord } from '../src/pipeline/index.js';
import { connectRedis, createDocumentQueue, createRedis, jobOptionsFor, keys as makeKeys, RedisDocumentStore, type Keys } from '../src/queue/index.js';
import { defaultTextLimits, plainText, TextExtractor, type OcrSettings, type PdfEngineName } from '../src/text/index.js';
import { makePdf } from '../test/helpers/pdf.js';
import { DocumentWorker } from '../src/worker/documentWorker.js';
import { documentsQueue } from '../test/helpers/stack.js';
import { CORPUS, makeHome, REDIS_URL, REPO, testModelPath, tokenizerDir, TOKENIZERS, uniquePrefix, type TokenizerName } from '../test/helpers/testEnv.js';
import { spawnWorker } from '../test/helpers/workers.js';
import { InstantEngine } from './instantEngine.js';
import { SteeredEngine } from './steeredEngine.js';
import { invoiceText } from './invoices.js';
import { popplerWords, recall, renderPage, scan } from '../test/helpers/scans.js';

const run = promisify(execFile);
const { values: args } = parseArgs({ options: {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  sequences: { type: 'string' },
  docs: { type: 'string' },
  shape: { type: 'string', default: 'smollm2-135m' },
  tokenizer: { type: 'string' },
  skip: { type: 'string', default: '' },
} });
const quick = args.quick!;

/** Real small instruct models' dimensions (llama architecture, random weights); quick runs a 2-layer slice. */
const SHAPES: Record<string, { name: string; shape: LlamaShape }> = {
  'smollm2-135m': { name: 'SmolLM2-135M shape', shape: { nEmbd: 576, nLayer: 30, nHead: 9, nHeadKv: 3, nFf: 1536, nVocab: 49152, contextLength: 8192 } },
  'qwen2.5-0.5b': { name: 'Qwen2.5-0.5B shape', shape: { nEmbd: 896, nLayer: 24, nHead: 14, nHeadKv: 2, nFf: 4864, nVocab: 151936, contextLength: 32768 } },
  'qwen2.5-1.5b': { name: 'Qwen2.5-1.5B shape', shape: { nEmbd: 1536, nLayer: 28, nHead: 12, nHeadKv: 2, nFf: 8960, nVocab: 151936, contextLength: 32768 } },
};
/** A real tokenizer (vocabulary, merges, chat template) instead of the made-up word-piece vocabulary. */
const TOKENIZER = args.tokenizer as TokenizerName | undefined;
if (TOKENIZER !== undefined && !(TOKENIZER in TOKENIZERS)) throw new Error(`--tokenizer must be one of ${Object.keys(TOKENIZERS).join(', ')}`);
const chosen = SHAPES[args.shape!];
if (!chosen) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
const SHAPE: LlamaShape = quick ? { ...chosen.shape, nLayer: 2 } : chosen.shape;
const SHAPE_NAME = quick ? `${chosen.name}, 2 of ${chosen.shape.nLayer} layers` : chosen.name;
/** Parts that can be left out, e.g. on a machine without poppler, or when time is short. */
const SKIP = new Set(args.skip!.split(',').filter(Boolean));
for (const part of SKIP) if (!['queue', 'pdf', 'ocr', 'rss'].includes(part)) throw new Error(`--skip takes queue, pdf, ocr, rss; got ${part}`);
const SEQUENCES = (args.sequences ?? (quick ? '1,2' : '1,2,4,8')).split(',').map(Number);
const DOCS = Number(args.docs ?? (quick ? 2 : 16));
// --quick takes one thread, as in CI, where the test suite runs beside it: llama.cpp's threads
// competing with the event loop for 2 cores made each quick document take 25% longer.
const THREADS = Number(process.env.DOCSIFT_THREADS ?? (quick ? 1 : Math.max(1, os.availableParallelism())));
const CONTEXT = 4096;
/** Worker RSS is compared after this many documents (the 200 vs 2,000). */
const RSS_DOCS = quick ? [3, 10] as const : [200, 2000] as const;
const MAX_TOKENS = 512;

const logger = createLogger({ level: 'silent', destination: 'stderr' });
const rows: Array<[string, string]> = [];
const report = (name: string, value: string) => {
  rows.push([name, value]);
  process.stderr.write(`  ${name.padEnd(58)} ${value}\n`);
};

/** Bench queue: extract invoices (one prompt, so raw and pipeline do the same work per document). */
function benchQueue(concurrency: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return documentsQueue({
    concurrency,
    pipeline: { mode: 'extract', documentType: 'invoice' },
    model: { contextSize: CONTEXT, maxTokens: MAX_TOKENS, temperature: 0, reasks: 0, chunking: { enabled: false } },
    // Redis only (always written): the "result stored in Redis", no outbox files.
    outputs: {},
    ...extra,
  });
}

function configFor(queues: Record<string, Record<string, unknown>>, prefix: string): { config: Config; queue: QueueConfig; home: string } {
  const home = makeHome(queues);
  const config = loadConfig({ ...process.env, REDIS_URL, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, DOCSIFT_THREADS: String(THREADS) });
  return { config, queue: getQueue(config, Object.keys(queues)[0]!), home };
}

// DOCS measured documents, then one warm-up document per sequence of the widest run.
const texts = Array.from({ length: DOCS + Math.max(...SEQUENCES) }, (_, i) => invoiceText(i, quick ? 0.4 : 1));

/**
 * The realistic model: random Q8_0 weights, real dimensions, and either a real tokenizer
 * (--tokenizer) or a subword vocabulary of the prompts' words.
 */
function benchModel(config: Config): string {
  if (TOKENIZER) {
    const file = path.join(os.tmpdir(), `docsift-bench-${args.shape}-${TOKENIZER}-${quick ? 'quick' : 'full'}-v1.gguf`);
    if (!fs.existsSync(file)) {
      const tmp = `${file}.${process.pid}.tmp`;
      const t = TOKENIZERS[TOKENIZER];
      makeLlamaModel(tmp, { shape: SHAPE, type: 'Q8_0', biasOutput: true, tokenizer: readHfTokenizer(tokenizerDir(TOKENIZER), t.pre), name: `${SHAPE_NAME}, ${t.name}` });
      fs.renameSync(tmp, file);
    }
    return file;
  }
  const keys = [...config.prompts.types.values()].flatMap((t) => schemaKeys(t.schema)).map((k) => `"${k}":`);
  const corpus = [renderSystemPrompt([...config.prompts.types.values()], config.prompts), ...texts.slice(0, 8), ...keys, 'null'].join(' ');
  const vocabulary = wordPieces(corpus);
  const id = createHash('sha256').update(JSON.stringify([SHAPE, vocabulary.length, 'v1'])).digest('hex').slice(0, 12);
  const file = path.join(os.tmpdir(), `docsift-bench-${id}.gguf`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    makeLlamaModel(tmp, { shape: SHAPE, type: 'Q8_0', biasOutput: true, vocabulary, name: SHAPE_NAME });
    fs.renameSync(tmp, file);
  }
  return file;
}

function schemaKeys(schema: Record<string, unknown>): string[] {
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  return Object.entries(props).flatMap(([k, v]) => [k, ...(v.items && typeof v.items === 'object' ? schemaKeys(v.items as Record<string, unknown>) : [])]);
}

/** Every prefix of every word, with and without SentencePiece's "▁", so merges reach whole words. */
function wordPieces(text: string): string[] {
  const pieces = new Set<string>();
  for (const m of text.matchAll(/"[a-z_]+":| ?[\p{L}_]+| ?\d+/gu)) {
    const word = m[0].replace(/^ /, '\u2581');
    for (let n = 2; n <= Math.min(word.length, 24); n++) pieces.add(word.slice(0, n));
  }
  return [...pieces];
}

interface RawResult { docsPerS: number; evaluatedPerS: number; generatedPerS: number; promptPerDoc: number; evaluatedPerDoc: number; generatedPerDoc: number; forcedPerDoc: number; msPerDoc: number; loopDelayP99Ms: number; loopDelayMaxMs: number }

/** With --tokenizer, answers are teacher-forced toward each invoice's true fields (SteeredEngine). */
function steered(engine: ModelEngine): ModelEngine | SteeredEngine {
  return TOKENIZER ? new SteeredEngine(engine) : engine;
}

/** The model alone: the same engine and prompts driven in-process, `sequences` documents at a time. */
async function raw(config: Config, queue: QueueConfig, modelPath: string, sequences: number, tuning: { prefixReuse?: boolean; decoder?: DecoderKind } = {}): Promise<RawResult> {
  const engine = steered(await ModelEngine.load({ modelPath, sequences, contextSize: CONTEXT, threads: THREADS, gpu: config.env.DOCSIFT_GPU, logger, prefixReuse: tuning.prefixReuse ?? true }));
  try {
    const pipeline = new Pipeline(config, { ...queue, model: { ...queue.model, decoder: tuning.decoder ?? 'walk' } }, engine);
    const doc = (t: string) => ({ text: plainText([t]) });
    // Warm-up: one document per sequence, so each holds the fixed prefix as in a running worker.
    await Promise.all(texts.slice(DOCS, DOCS + sequences).map((t) => pipeline.run(doc(t))));
    const before = { ...engine.stats };
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: sequences }, async () => {
      while (next < DOCS) await pipeline.run(doc(texts[next++]!));
    }));
    const seconds = (performance.now() - started) / 1000;
    delay.disable();
    const d = (k: keyof typeof before) => engine.stats[k] - before[k];
    return {
      docsPerS: DOCS / seconds,
      evaluatedPerS: d('evaluatedTokens') / seconds,
      generatedPerS: d('generatedTokens') / seconds,
      promptPerDoc: d('promptTokens') / DOCS,
      evaluatedPerDoc: d('evaluatedTokens') / DOCS,
      generatedPerDoc: d('generatedTokens') / DOCS,
      forcedPerDoc: d('forcedTokens') / DOCS,
      msPerDoc: (seconds * 1000) / DOCS,
      loopDelayP99Ms: delay.percentile(99) / 1e6,
      loopDelayMaxMs: delay.max / 1e6,
    };
  } finally {
    await engine.dispose();
  }
}

/** A DocumentWorker in this process on `engine`: enqueue (text files) -> worker -> result in Redis. */
async function throughQueue(queues: Record<string, Record<string, unknown>>, engine: Engine, count: number, body: (i: number) => string): Promise<QueueRun & { sample: ResultRecord }> {
  const prefix = uniquePrefix('bench');
  const { config, queue } = configFor(queues, prefix);
  const keys = makeKeys(prefix);
  const redis = createRedis(REDIS_URL, { forWorker: true });
  await connectRedis(redis, REDIS_URL);
  const bull = createDocumentQueue(queue, redis, keys);
  const enqueuer = new Enqueuer(config, queue, bull, redis, keys, new RedisDocumentStore(redis, keys, 3600));
  for (let i = 0; i < count; i++) await enqueuer.enqueue({ bytes: Buffer.from(body(i)), filename: `doc-${i}.txt`, source: 'bench' });
  const worker = newWorker(config, queue, redis, keys, engine);
  // Counted from BullMQ's events, not by polling each document, which would load Redis itself.
  let settled = 0;
  const failures: string[] = [];
  let sample: ResultRecord | undefined;
  const finished = new Promise<void>((resolve) => {
    const settle = () => (++settled === count ? resolve() : undefined);
    worker.worker.on('completed', (_job, record) => {
      sample ??= record;
      settle();
    });
    worker.worker.on('failed', (_job, err) => {
      failures.push(err.message);
      settle();
    });
  });
  const cpu = await cpuMeter(redis);
  const started = performance.now();
  worker.run();
  await finished;
  const seconds = (performance.now() - started) / 1000;
  const used = await cpu();
  if (failures.length) throw new Error(`bench: ${failures.length} documents failed: ${failures[0]}`);
  await worker.close(5000);
  await cleanup(redis, bull, prefix);
  return { jobsPerS: count / seconds, nodeCpuUsPerJob: used.nodeUs / count, redisCpuUsPerJob: used.redisUs / count, sample: sample! };
}

interface QueueRun { jobsPerS: number; nodeCpuUsPerJob: number; redisCpuUsPerJob: number }

/** CPU time this process and the Redis server spend from now until the returned function is called. */
async function cpuMeter(redis: ReturnType<typeof createRedis>): Promise<() => Promise<{ nodeUs: number; redisUs: number }>> {
  const redisCpu = async () => {
    const info = await redis.info('cpu');
    const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
    return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
  };
  const node = process.cpuUsage();
  const redisBefore = await redisCpu();
  return async () => {
    const { user, system } = process.cpuUsage(node);
    return { nodeUs: user + system, redisUs: (await redisCpu()) - redisBefore };
  };
}

function newWorker(config: Config, queue: QueueConfig, redis: ReturnType<typeof createRedis>, keys: Keys, engine: Engine): DocumentWorker {
  return new DocumentWorker({
    config, queue, redis, keys, engine, extractor: new TextExtractor(), logger, concurrency: engine.info.sequences, metrics: new Metrics(),
    outputs: createOutputs(queue, { redis, keys, deliveries: createDeliveryQueue(redis, keys) }),
  });
}

async function cleanup(redis: ReturnType<typeof createRedis>, bull: Queue, prefix: string): Promise<void> {
  await bull.obliterate({ force: true }).catch(() => undefined);
  await bull.close();
  const left = await redis.keys(`${prefix}:*`);
  if (left.length) await redis.del(...left);
  await redis.quit();
}

/**
 * A BullMQ worker on the same Redis, with the same job options (retries, retention) as docsift's
 * queue. With no `record` it does nothing: the floor for any queue-based worker. With one it does
 * the Redis work a document needs and nothing else: reads the bytes the job points at, stores
 * `record` under a result key and returns it to BullMQ. Against that, what is left is docsift's
 * own code (payload checks, text stage, pipeline, metrics, logs).
 */
async function bareBullmq(queueConfig: QueueConfig, count: number, concurrency: number, record?: ResultRecord, body?: (i: number) => string): Promise<QueueRun> {
  const prefix = uniquePrefix('bench-bare');
  const redis = createRedis(REDIS_URL, { forWorker: true });
  await connectRedis(redis, REDIS_URL);
  const queue = new Queue('bare', { connection: redis, prefix });
  if (record && body) for (let i = 0; i < count; i++) await redis.set(`${prefix}:doc:${i}`, body(i));
  await queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: 'doc', data: { i, key: `${prefix}:doc:${i}` }, opts: jobOptionsFor(queueConfig) })));
  const processor = record
    ? async (job: { data: { i: number; key: string } }): Promise<unknown> => {
      await redis.getBuffer(job.data.key);
      await redis.set(`${prefix}:result:${job.data.i}`, JSON.stringify(record));
      return record;
    }
    : async (): Promise<unknown> => ({ ok: true });
  let done = 0;
  const cpu = await cpuMeter(redis);
  const started = performance.now();
  let seconds = 0;
  await new Promise<void>((resolve) => {
    const worker = new Worker('bare', processor, { connection: redis, prefix, concurrency });
    worker.on('completed', () => {
      if (++done !== count) return;
      seconds = (performance.now() - started) / 1000;
      void worker.close().then(resolve);
    });
  });
  const used = await cpu();
  await cleanup(redis, queue, prefix);
  return { jobsPerS: count / seconds, nodeCpuUsPerJob: used.nodeUs / count, redisCpuUsPerJob: used.redisUs / count };
}

/**
 * docsift with an instant model against a BullMQ worker that does nothing, and against one that
 * does only the Redis work of a document (same bytes, same result record): jobs/s of each.
 */
async function queueOverhead(): Promise<{ docsift: QueueRun; bare: QueueRun; bareSameIo: QueueRun }> {
  const jobs = quick ? 200 : 5000;
  const concurrency = 8;
  const queues = { documents: benchQueue(concurrency) };
  const { config, queue } = configFor(queues, uniquePrefix('bench'));
  const body = (i: number) => `Invoice ${i}\nTotal ${i}.00 EUR`;
  const runAll = async () => {
    const { sample, ...docsift } = await throughQueue(queues, new InstantEngine(config, concurrency), jobs, body);
    const bare = await bareBullmq(queue, jobs, concurrency);
    const bareSameIo = await bareBullmq(queue, jobs, concurrency, sample, body);
    return { docsift, bare, bareSameIo };
  };
  // A first pass warms V8 for all three: measured cold, the first contender of the process paid
  // for compiling BullMQ's and ioredis's code too (a third of its CPU went to compiler threads).
  await runAll();
  return runAll();
}

interface PdfSet { pages: number; pdftotextPagesPerS: number; engines: Partial<Record<PdfEngineName, number>> }

/**
 * docsift's PDF text stage against poppler's `pdftotext -layout`, each with one document per core
 * in flight (docsift's pool starts a parser process per concurrent document; pdftotext is one
 * process per document), on the corpus and on generated text PDFs (the bench's invoices, one to
 * three pages each): pages/s of each engine docsift has here, and of pdftotext.
 */
async function pdfStage(): Promise<{ corpus: PdfSet; generated: PdfSet } | { skipped: string }> {
  const corpus = fs.existsSync(CORPUS) ? fs.readdirSync(CORPUS).filter((f) => f.endsWith('.pdf')).map((f) => path.join(CORPUS, f)) : [];
  if (!corpus.length) return { skipped: `no PDFs in ${CORPUS}` };
  try {
    await run('pdftotext', ['-v']);
  } catch {
    return { skipped: 'pdftotext not installed (apt-get install poppler-utils)' };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-bench-pdf-'));
  const generated = Array.from({ length: quick ? 24 : 200 }, (_, i) => {
    const file = path.join(dir, `invoice-${i}.pdf`);
    fs.writeFileSync(file, makePdf({ pages: Array.from({ length: 1 + (i % 3) }, (_, p) => invoiceText(i * 3 + p)) }));
    return file;
  });
  const engines: PdfEngineName[] = libraryMissing('poppler') ? ['pdf.js'] : ['poppler', 'pdf.js'];
  const parallel = os.availableParallelism();
  const rounds = quick ? 1 : 3;
  const measure = async (files: string[]): Promise<PdfSet> => {
    const set: PdfSet = { pages: 0, pdftotextPagesPerS: 0, engines: {} };
    for (const engine of engines) {
      const extractor = new TextExtractor();
      // The queue's defaults; these PDFs have text layers, so OCR never runs.
      const limits = defaultTextLimits({ pdfEngine: engine });
      await inParallel(files.slice(0, parallel), parallel, (f) => extractor.extract(fs.readFileSync(f), limits)); // start the parser processes
      let pages = 0;
      const started = performance.now();
      for (let r = 0; r < rounds; r++) {
        await inParallel(files, parallel, async (f) => {
          const read = await extractor.extract(fs.readFileSync(f), limits);
          pages += read.pages.length; // not `pages += await …`: that reads pages before the await
        });
      }
      set.engines[engine] = pages / ((performance.now() - started) / 1000);
      set.pages = pages / rounds;
      await extractor.close();
    }
    const started = performance.now();
    for (let r = 0; r < rounds; r++) await inParallel(files, parallel, (f) => run('pdftotext', ['-layout', f, '-']));
    set.pdftotextPagesPerS = (set.pages * rounds) / ((performance.now() - started) / 1000);
    return set;
  };
  try {
    return { corpus: await measure(corpus), generated: await measure(generated) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `fn` over `items`, `n` at a time. */
async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * Decode speed under docsift's constraints over plain sampling, on the same model, prompt and one
 * sequence at temperature 0 (issue: grammar-constrained sampling is the decode bottleneck).
 * Constrained is docsift's own decoder (the walk, for the invoice schema): decode steps per
 * second, each sampling one token under the grammar with its confidence, and evaluating in the
 * same batch the fixed text the schema appended before it (counted as time, not as tokens, so
 * jump-forward does not flatter the figure). Unconstrained: one sampled token per step, plain,
 * and with the token's confidence as the walk asks for it (node-llama-cpp then sorts the whole
 * vocabulary on every step: what that costs, apart from the grammar). The prompt is evaluated
 * first, untimed.
 */
async function constrainedDecode(config: Config, modelPath: string): Promise<{ constrainedPerS: number; withConfidencePerS: number; unconstrainedPerS: number; tokens: number }> {
  const { llama } = await loadLlama({ gpu: config.env.DOCSIFT_GPU, threads: THREADS });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: CONTEXT, threads: THREADS, sequences: 1 });
  const sequence = context.getSequence();
  const answer = compileAnswer(toGrammarSchema(config.prompts.types.get('invoice')!.schema) as Record<string, unknown>);
  const grammar = await llama.createGrammar({ grammar: answerGbnf(answer) });
  const prompt = model.tokenize(texts[0]!).slice(0, 512);
  const limit = quick ? 24 : 96;
  const plain = async (confidence: boolean) => {
    await sequence.clearHistory();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
    let tokens = 0;
    const started = performance.now();
    for await (const { token } of sequence.evaluateWithMetadata(prompt.slice(-1), { confidence }, { temperature: 0 })) {
      if (++tokens >= limit || token === model.tokens.eos) break;
    }
    return { tokens, seconds: (performance.now() - started) / 1000 };
  };
  const walk = async () => {
    await sequence.clearHistory();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
    const started = performance.now();
    const decoded = await decodeJson(sequence, prompt.slice(-1), { decoder: 'walk', answer, grammar, maxTokens: limit * 4, temperature: 0 });
    return { tokens: decoded.generatedTokens, seconds: (performance.now() - started) / 1000 };
  };
  try {
    await plain(false); // warm-up
    const unconstrained = await plain(false);
    const withConfidence = await plain(true);
    const walked = await walk();
    return {
      constrainedPerS: walked.tokens / walked.seconds, withConfidencePerS: withConfidence.tokens / withConfidence.seconds, unconstrainedPerS: unconstrained.tokens / unconstrained.seconds,
      tokens: Math.min(unconstrained.tokens, walked.tokens),
    };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

/**
 * docsift's OCR stage against Debian's tesseract CLI on the same page images: scans made from
 * the corpus (as ocr.test.ts makes them), as many pages at once as there are cores on both sides
 * (the OCR pool sized to the cores; one single-threaded tesseract process per core, since its
 * OpenMP threads on busy cores made it 5x slower in SPIKES.md). Both warm: the pool's processes
 * have their model loaded; tesseract loads its own per page, as it does when used this way.
 */
async function ocrStage(): Promise<{ docsiftPagesPerS: number; wasmPagesPerS: number; engine: string; tesseractPagesPerS: number; pages: number; recall: { docsift: number; wasm: number; tesseract: number } } | { skipped: string }> {
  try {
    await run('tesseract', ['--version']);
  } catch {
    return { skipped: 'tesseract not installed (apt-get install tesseract-ocr tesseract-ocr-eng)' };
  }
  const names = ['oyo.pdf', 'AzureInterior.pdf', 'coolblue1.pdf', 'coolblue2.pdf', 'saeco.pdf', 'SammyMaystoneLinesTest.pdf'].slice(0, quick ? 2 : 6).filter((n) => fs.existsSync(path.join(CORPUS, n)));
  if (!names.length) return { skipped: `no corpus PDFs in ${CORPUS}` };
  const dpi = quick ? 200 : 300;
  const cores = os.availableParallelism();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-bench-ocr-'));
  const images = await Promise.all(names.map(async (n, i) => {
    const jpeg = await scan(await renderPage(path.join(CORPUS, n), 1, dpi), { degrees: 1, noise: 0.002, quality: 80, seed: i + 1 });
    const file = path.join(dir, `${i}.jpg`);
    fs.writeFileSync(file, jpeg);
    return { jpeg, file, reference: popplerWords(path.join(CORPUS, n), 1) };
  }));
  // The default engine (auto: libtesseract where installed), then tesseract.js, each in a pool of its own.
  const stage = async (engine: OcrSettings['engine']) => {
    const extractor = new TextExtractor();
    const limits = defaultTextLimits({ timeoutMs: 600_000, ocr: { workers: cores, pageTimeoutMs: 600_000, engine } });
    await Promise.all(images.slice(0, cores).map((i) => extractor.extract(i.jpeg, limits))); // start and load the pool
    const began = performance.now();
    const texts = await Promise.all(images.map((i) => extractor.extract(i.jpeg, limits)));
    const pagesPerS = images.length / ((performance.now() - began) / 1000);
    await extractor.close();
    return { pagesPerS, texts, engine: texts[0]!.ocr!.engine };
  };
  const ours = await stage('auto');
  const wasm = await stage('tesseract.js');
  let started: number;
  const theirs: string[] = new Array<string>(images.length);
  let next = 0;
  started = performance.now();
  await Promise.all(Array.from({ length: cores }, async () => {
    while (next < images.length) {
      const i = next++;
      theirs[i] = (await run('tesseract', [images[i]!.file, 'stdout', '-l', 'eng'], { env: { ...process.env, OMP_THREAD_LIMIT: '1' }, maxBuffer: 16 << 20 })).stdout;
    }
  }));
  const tesseractPagesPerS = images.length / ((performance.now() - started) / 1000);
  fs.rmSync(dir, { recursive: true, force: true });
  const mean = (texts: string[]) => texts.reduce((a, t, k) => a + recall(images[k]!.reference, t), 0) / texts.length;
  return {
    docsiftPagesPerS: ours.pagesPerS, engine: ours.engine, wasmPagesPerS: wasm.pagesPerS, tesseractPagesPerS, pages: images.length,
    recall: { docsift: mean(ours.texts.map((t) => t.pages[0]!)), wasm: mean(wasm.texts.map((t) => t.pages[0]!)), tesseract: mean(theirs) },
  };
}

/**
 * A real worker process on the tiny test model: its RSS over the documents up to `small` and over
 * the last `small` documents up to `large` (and up to every fifth of the way, so a rise that
 * levels off can be told from a leak). Each figure is the mean of samples taken every 250 ms
 * across that stretch: V8 grows and shrinks its heap by 20-30 MB as it goes, so one reading
 * says more about where the collector stood than about the worker.
 */
async function rssGrowth(small: number, large: number): Promise<{ rssAfterSmallMb: number; rssAfterLargeMb: number; samples: Record<number, number> }> {
  const prefix = uniquePrefix('bench-rss');
  const { config, queue, home } = configFor({ documents: documentsQueue({ concurrency: 2 }) }, prefix);
  const env = { ...process.env, REDIS_URL, DOCSIFT_HOME: home, DOCSIFT_PREFIX: prefix, DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info' };
  const keys = makeKeys(prefix);
  const redis = createRedis(REDIS_URL, { forWorker: false });
  await connectRedis(redis, REDIS_URL);
  const bull = createDocumentQueue(queue, redis, keys);
  const enqueuer = new Enqueuer(config, queue, bull, redis, keys, new RedisDocumentStore(redis, keys, 3600));
  const worker = await spawnWorker(env);
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${worker.process.pid}/status`, 'utf8'))![1]) / 1024;
  let settled = 0;
  const readings: Array<{ settled: number; mb: number }> = [];
  const timer = setInterval(() => readings.push({ settled, mb: rss() }), 250);
  try {
    const outcomes = [];
    for (let i = 0; i < large; i++) outcomes.push(await enqueuer.enqueue({ bytes: Buffer.from(`Invoice ${i}\nTotal ${i}.00 EUR`), filename: `r${i}.txt`, source: 'bench' }));
    await waitForDocuments(bull, redis, keys, outcomes, { timeoutMs: 3_600_000, pollMs: 500, onSettled: () => void settled++ });
    clearInterval(timer);
    const meanUpTo = (n: number) => {
      const window = readings.filter((r) => r.settled > n - small && r.settled <= n).map((r) => r.mb);
      // A stretch shorter than one sampling interval: the last reading before its end.
      if (!window.length) return readings.filter((r) => r.settled <= n).at(-1)?.mb ?? NaN;
      return window.reduce((a, b) => a + b, 0) / window.length;
    };
    const samples: Record<number, number> = {};
    for (const n of [small, ...[1, 2, 3, 4, 5].map((k) => small + Math.round(((large - small) * k) / 5))]) samples[n] = Math.round(meanUpTo(n));
    return { rssAfterSmallMb: meanUpTo(small), rssAfterLargeMb: meanUpTo(large), samples };
  } finally {
    clearInterval(timer);
    await worker.stop('SIGTERM');
    await cleanup(redis, bull, prefix);
  }
}

async function main(): Promise<void> {
  if (args.only === 'queue') {
    const { docsift, bare, bareSameIo } = await queueOverhead();
    process.stdout.write(`${JSON.stringify({ docsift, bare, bareSameIo, ratio: docsift.jobsPerS / bare.jobsPerS, sameIoRatio: docsift.jobsPerS / bareSameIo.jobsPerS })}\n`);
    return;
  }
  if (args.only === 'rss') {
    const [small, large] = RSS_DOCS;
    const rss = await rssGrowth(small, large);
    process.stdout.write(`${JSON.stringify({ small, large, ...rss, ratio: rss.rssAfterLargeMb / rss.rssAfterSmallMb })}\n`);
    return;
  }
  if (args.only === 'ocr') {
    process.stdout.write(`${JSON.stringify(await ocrStage())}\n`);
    return;
  }
  if (args.only === 'pdf') {
    process.stdout.write(`${JSON.stringify(await pdfStage())}\n`);
    return;
  }
  if (args.only) throw new Error(`--only takes queue, rss, ocr or pdf; got ${args.only}`);
  const startedAll = performance.now();
  const prefix = uniquePrefix('bench');
  const maxSeq = Math.max(...SEQUENCES);
  const { config, queue } = configFor({ documents: benchQueue(maxSeq) }, prefix);
  process.stderr.write(`docsift bench${quick ? ' --quick' : ''}: ${DOCS} documents per run, ${THREADS} threads, ${os.availableParallelism()} cores\n`);
  const modelPath = benchModel(config);
  const probe = await ModelEngine.load({ modelPath, sequences: 1, contextSize: CONTEXT, threads: THREADS, gpu: config.env.DOCSIFT_GPU, logger });
  const backend = probe.info.backend;
  const docTokens = texts.slice(0, DOCS).reduce((n, t) => n + probe.countTokens(documentText(plainText([t]))), 0) / DOCS;
  await probe.dispose();
  report('model', `${SHAPE_NAME}, Q8_0, ${(fs.statSync(modelPath).size / 1e6).toFixed(0)} MB, backend ${backend}`);
  report('document text tokens (mean)', docTokens.toFixed(0));
  const decodeSpeed = await constrainedDecode(config, modelPath);
  report(`decode steps/s, 1 sequence: docsift's walk | unconstrained with confidence | plain (${decodeSpeed.tokens}+ tokens)`, `${decodeSpeed.constrainedPerS.toFixed(1)} | ${decodeSpeed.withConfidencePerS.toFixed(1)} | ${decodeSpeed.unconstrainedPerS.toFixed(1)}`);

  // Batching, and the raw ceiling at every width.
  const batching: Record<string, RawResult> = {};
  for (const n of SEQUENCES) {
    batching[n] = await raw(config, queue, modelPath, n);
    report(`raw, ${n} sequence(s): documents/s | evaluated tok/s | decode tok/s`, `${batching[n]!.docsPerS.toFixed(2)} | ${batching[n]!.evaluatedPerS.toFixed(0)} | ${batching[n]!.generatedPerS.toFixed(0)}`);
  }
  const best = SEQUENCES.reduce((a, b) => (batching[b]!.docsPerS > batching[a]!.docsPerS ? b : a));
  const batchSpeedup = Object.fromEntries(SEQUENCES.map((n) => [n, round(batching[n]!.docsPerS / batching[SEQUENCES[0]!]!.docsPerS)]));

  // The same documents through Redis, BullMQ, the worker and the Redis output, at the best width.
  const engine = steered(await ModelEngine.load({ modelPath, sequences: best, contextSize: CONTEXT, threads: THREADS, gpu: config.env.DOCSIFT_GPU, logger }));
  let pipelineDocsPerS: number;
  try {
    const warm = 1_000_000;
    await throughQueue({ documents: benchQueue(best) }, engine, best, (i) => texts[DOCS + i]!.replace('INV-', `INV-${warm}-`));
    pipelineDocsPerS = (await throughQueue({ documents: benchQueue(best) }, engine, DOCS, (i) => texts[i]!)).jobsPerS;
  } finally {
    await engine.dispose();
  }
  const rawBest = batching[best]!;
  report(`pipeline, ${best} sequence(s): documents/s (raw ${rawBest.docsPerS.toFixed(2)})`, pipelineDocsPerS.toFixed(2));

  // Prefix reuse and jump-forward decoding, each off against the default (on), at one sequence.
  // "On" is measured again, next to "off", rather than taken from the first batching run: on the H100
  // the first run of a process was the slowest of all and made prefix reuse look like a loss.
  // --quick only checks that every part still runs, so it takes "on" from the batching run.
  const one = quick && batching[1] ? batching[1] : await raw(config, queue, modelPath, 1);
  const noReuse = await raw(config, queue, modelPath, 1, { prefixReuse: false });
  report('prefix reuse on vs off: prompt tokens evaluated per document', `${one.promptPerDoc.toFixed(0)} vs ${noReuse.promptPerDoc.toFixed(0)}`);
  report('prefix reuse on vs off: documents/s', `${one.docsPerS.toFixed(2)} vs ${noReuse.docsPerS.toFixed(2)}`);
  const noJump = await raw(config, queue, modelPath, 1, { decoder: 'grammar' });
  report('decoder walk vs grammar: decode steps per document', `${one.generatedPerDoc.toFixed(0)} vs ${noJump.generatedPerDoc.toFixed(0)}`);
  report('decoder walk vs grammar: answer tokens per document', `${(one.generatedPerDoc + one.forcedPerDoc).toFixed(0)} vs ${noJump.generatedPerDoc.toFixed(0)}`);
  report('decoder walk vs grammar: ms per document', `${one.msPerDoc.toFixed(0)} vs ${noJump.msPerDoc.toFixed(0)}`);

  // Work: model evaluations per document against the floor (read the text once, write each value once).
  const valueTokens = one.generatedPerDoc;
  const workEfficiency = one.evaluatedPerDoc / (docTokens + valueTokens);
  report('work efficiency: evaluations / (text + value tokens)', `${workEfficiency.toFixed(3)} (${one.evaluatedPerDoc.toFixed(0)} / (${docTokens.toFixed(0)} + ${valueTokens.toFixed(0)}))`);
  report(`event-loop delay under load (${maxSeq} sequences): p99 | max`, `${batching[maxSeq]!.loopDelayP99Ms.toFixed(1)} ms | ${batching[maxSeq]!.loopDelayMaxMs.toFixed(1)} ms`);

  // Queue overhead: docsift with an instant model against a BullMQ worker that does nothing.
  const queueRuns = SKIP.has('queue') ? null : await queueOverhead();
  const perJob = (r: QueueRun) => `${r.jobsPerS.toFixed(0)}/s (${r.nodeCpuUsPerJob.toFixed(0)} + ${r.redisCpuUsPerJob.toFixed(0)} µs)`;
  report('queue overhead: docsift (instant model) vs bare BullMQ, jobs/s (CPU per job: Node + Redis)', queueRuns ? `${perJob(queueRuns.docsift)} vs ${perJob(queueRuns.bare)}` : 'skipped');
  report('queue overhead: bare BullMQ doing a document\'s Redis work (read bytes, store result)', queueRuns ? perJob(queueRuns.bareSameIo) : 'skipped');

  const pdf = SKIP.has('pdf') ? { skipped: '--skip pdf' } : await pdfStage();
  if ('skipped' in pdf) report('text stage vs pdftotext', `skipped: ${pdf.skipped}`);
  else {
    for (const [name, set] of Object.entries(pdf)) {
      const engines = Object.entries(set.engines).map(([engine, perS]) => `${engine} ${perS.toFixed(1)}`).join(', ');
      report(`PDF text stage, ${name} (${set.pages} pages, ${os.availableParallelism()} at once): pages/s, docsift vs pdftotext -layout`, `${engines} vs ${set.pdftotextPagesPerS.toFixed(1)}`);
    }
  }
  // The fastest engine here (poppler where installed) over pdftotext, on each set; pdf.js's too.
  const pdfRatio = (set: PdfSet, engine?: PdfEngineName) => round((engine ? set.engines[engine]! : Math.max(...Object.values(set.engines))) / set.pdftotextPagesPerS);

  const ocr = SKIP.has('ocr') ? { skipped: '--skip ocr' } : await ocrStage();
  if ('skipped' in ocr) report('OCR stage vs tesseract', `skipped: ${ocr.skipped}`);
  else {
    report(`OCR stage: pages/s, docsift (${ocr.engine}) vs tesseract CLI (${ocr.pages} scanned pages, ${os.availableParallelism()} at once)`, `${ocr.docsiftPagesPerS.toFixed(2)} vs ${ocr.tesseractPagesPerS.toFixed(2)}`);
    report('OCR stage with tesseract.js (where libtesseract is not installed): pages/s', ocr.wasmPagesPerS.toFixed(2));
    report(`OCR word recall against pdftotext of the original: docsift (${ocr.engine}), tesseract.js, tesseract CLI`, `${ocr.recall.docsift.toFixed(3)}, ${ocr.recall.wasm.toFixed(3)}, ${ocr.recall.tesseract.toFixed(3)}`);
  }

  const [small, large] = RSS_DOCS;
  const rss = SKIP.has('rss') ? { rssAfterSmallMb: NaN, rssAfterLargeMb: NaN } : await rssGrowth(small, large);
  report(`worker RSS (mean) over documents 1-${small} vs ${large - small + 1}-${large}`, SKIP.has('rss') ? 'skipped' : `${rss.rssAfterSmallMb.toFixed(0)} MB vs ${rss.rssAfterLargeMb.toFixed(0)} MB`);

  const summary = {
    pipeline_vs_raw: round(pipelineDocsPerS / rawBest.docsPerS),
    batch_speedup: batchSpeedup,
    prefix_reuse_speedup: round(one.docsPerS / noReuse.docsPerS),
    forced_decoding_speedup: round(noJump.msPerDoc / one.msPerDoc),
    work_efficiency: round(workEfficiency),
    queue_overhead_ratio: queueRuns ? round(queueRuns.docsift.jobsPerS / queueRuns.bare.jobsPerS) : null,
    queue_overhead_same_io_ratio: queueRuns ? round(queueRuns.docsift.jobsPerS / queueRuns.bareSameIo.jobsPerS) : null,
    pdf_vs_pdftotext: 'skipped' in pdf ? null : pdfRatio(pdf.corpus),
    pdf_generated_vs_pdftotext: 'skipped' in pdf ? null : pdfRatio(pdf.generated),
    pdf_engine: 'skipped' in pdf ? null : (Object.entries(pdf.corpus.engines).sort((a, b) => b[1] - a[1])[0]![0] as PdfEngineName),
    pdf_pdfjs_vs_pdftotext: 'skipped' in pdf ? null : { corpus: pdfRatio(pdf.corpus, 'pdf.js'), generated: pdfRatio(pdf.generated, 'pdf.js') },
    constrained_decode_ratio: round(decodeSpeed.constrainedPerS / decodeSpeed.unconstrainedPerS),
    // The same with the unconstrained side also reading each token's confidence: the grammar's own share.
    constrained_decode_ratio_same_metadata: round(decodeSpeed.constrainedPerS / decodeSpeed.withConfidencePerS),
    ocr_vs_tesseract: 'skipped' in ocr ? null : round(ocr.docsiftPagesPerS / ocr.tesseractPagesPerS),
    ocr_engine: 'skipped' in ocr ? null : ocr.engine,
    ocr_wasm_vs_tesseract: 'skipped' in ocr ? null : round(ocr.wasmPagesPerS / ocr.tesseractPagesPerS),
    ocr_recall: 'skipped' in ocr ? null : { docsift: round(ocr.recall.docsift), wasm: round(ocr.recall.wasm), tesseract: round(ocr.recall.tesseract) },
    rss_growth_ratio: SKIP.has('rss') ? null : round(rss.rssAfterLargeMb / rss.rssAfterSmallMb),
    event_loop_delay_p99_ms: round(batching[maxSeq]!.loopDelayP99Ms),
    machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? 'unknown', threads: THREADS, backend, model_shape: { name: SHAPE_NAME, ...SHAPE, type: 'Q8_0' }, tokenizer: TOKENIZER ?? 'word pieces of the prompts' },
    quick,
    documents_per_run: DOCS,
    seconds: Math.round((performance.now() - startedAll) / 1000),
  };
  const full = { summary, docTokens, decodeSpeed, batching, pipelineDocsPerS, best, noReuse, noJump, queue: queueRuns, pdf, ocr, rss, rows };
  const dir = path.join(REPO, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
  fs.writeFileSync(file, JSON.stringify(full, null, 2));
  process.stderr.write(`full results: ${path.relative(process.cwd(), file)}\n`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

await main();
process.exit(0);
