import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  getLlama, LlamaChatSession, LlamaLogLevel,
  type Llama, type LlamaContext, type LlamaContextSequence, type LlamaGrammar, type LlamaModel,
} from 'node-llama-cpp';
import { DocsiftError } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { toGrammarSchema } from './grammarSchema.js';
import { autoSequences } from './models.js';

export interface EngineOptions {
  modelPath: string;
  /** Parallel sequences in the one context; the worker's concurrency ("auto": what fits, see autoSequences). */
  sequences: number | 'auto';
  /** Tokens per sequence. */
  contextSize: number;
  threads: number;
  gpu: 'auto' | 'cuda' | 'vulkan' | 'metal' | 'cpu';
  logger: Logger;
  /** LoRA adapters (GGUF files) applied to the context. */
  lora?: ReadonlyArray<{ path: string; scale: number }>;
}

export interface ModelInfo {
  file: string;
  sha256: string;
  /** LoRA adapter file names, in order. */
  lora: string[];
  backend: string;
  sequences: number;
  contextSize: number;
  threads: number;
  loadMs: number;
}

export interface AskOptions {
  /** JSON Schema (the supported subset) that constrains the answer. */
  schema: Record<string, unknown>;
  maxTokens: number;
  temperature: number;
  signal?: AbortSignal;
}

export interface Answer {
  text: string;
  promptTokens: number;
  generatedTokens: number;
  /** The model stopped because it hit maxTokens: the JSON is almost surely cut off. */
  truncated: boolean;
}

/** One conversation on one sequence: a system prompt, then questions and re-asks. */
export interface ModelChat {
  /** Tokens the next ask would occupy in the context, prompt template included, before generation. */
  tokensFor(user: string): number;
  /** Free context tokens left in this sequence. */
  readonly contextSize: number;
  ask(user: string, options: AskOptions): Promise<Answer>;
}

/**
 * The only piece of docsift that talks to node-llama-cpp. One per worker process: the model is
 * loaded once, one context holds as many sequences as the worker runs jobs, and each job borrows
 * a sequence for the length of a chat. A sequence keeps its evaluated tokens between jobs, so the
 * fixed start of the next prompt (template and instructions) is not evaluated again.
 */
export class ModelEngine {
  private readonly free: LlamaContextSequence[];
  private readonly waiting: Array<(seq: LlamaContextSequence) => void> = [];
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private disposed = false;

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly info: ModelInfo,
  ) {
    this.free = Array.from({ length: context.totalSequences }, () => context.getSequence());
  }

  static async load(options: EngineOptions): Promise<ModelEngine> {
    const started = performance.now();
    const file = path.resolve(options.modelPath);
    checkModelFile(file);
    const sha256 = hashFile(file);
    const llama = await createLlama(options);
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: file });
    } catch (err) {
      await llama.dispose();
      throw new Error(`cannot load model ${file}: ${(err as Error).message} (is it a complete GGUF file?)`);
    }
    let context: LlamaContext;
    try {
      for (const adapter of options.lora ?? []) checkModelFile(path.resolve(adapter.path));
      const sequences = options.sequences === 'auto' ? await autoSequences(file, llama, options.contextSize) : options.sequences;
      context = await model.createContext({
        sequences,
        contextSize: options.contextSize,
        threads: options.threads,
        ...(options.lora?.length ? { lora: { adapters: options.lora.map((a) => ({ filePath: path.resolve(a.path), scale: a.scale })) } } : {}),
      });
    } catch (err) {
      await model.dispose();
      await llama.dispose();
      throw new Error(`cannot create a context of ${options.sequences} x ${options.contextSize} tokens for ${file}: ${(err as Error).message} (lower the queue's concurrency or model.contextSize)`);
    }
    const info: ModelInfo = {
      file: path.basename(file),
      sha256: await sha256,
      lora: (options.lora ?? []).map((a) => path.basename(a.path)),
      backend: llama.gpu === false ? 'cpu' : llama.gpu,
      sequences: context.totalSequences,
      contextSize: context.contextSize,
      threads: options.threads,
      loadMs: Math.round(performance.now() - started),
    };
    return new ModelEngine(llama, model, context, info);
  }

  countTokens(text: string): number {
    return this.model.tokenize(text).length;
  }

  /** Borrows a sequence for one chat with this system prompt; waits while all are busy. */
  async chat<T>(system: string, fn: (chat: ModelChat) => Promise<T>): Promise<T> {
    if (this.disposed) throw new DocsiftError('MODEL_ERROR', 'the model engine is shut down');
    const sequence = this.free.pop() ?? (await new Promise<LlamaContextSequence>((resolve) => this.waiting.push(resolve)));
    const session = new LlamaChatSession({ contextSequence: sequence, systemPrompt: system, autoDisposeSequence: false });
    try {
      return await fn(this.makeChat(session));
    } catch (err) {
      if (err instanceof DocsiftError || (err instanceof Error && err.name === 'AbortError')) throw err;
      throw new DocsiftError('MODEL_ERROR', `inference failed: ${(err as Error).message}`, { cause: err });
    } finally {
      session.dispose({ disposeSequence: false });
      const next = this.waiting.shift();
      if (next) next(sequence);
      else this.free.push(sequence);
    }
  }

  private makeChat(session: LlamaChatSession): ModelChat {
    const model = this.model;
    const engine = this;
    return {
      contextSize: session.sequence.contextSize,
      tokensFor(user: string): number {
        const history = [...session.getChatHistory(), { type: 'user' as const, text: user }, { type: 'model' as const, response: [] }];
        const { contextText } = session.chatWrapper.generateContextState({ chatHistory: history });
        return contextText.tokenize(model.tokenizer).length;
      },
      async ask(user: string, options: AskOptions): Promise<Answer> {
        const grammar = await engine.grammarFor(options.schema);
        const meter = session.sequence.tokenMeter;
        const before = { input: meter.usedInputTokens, output: meter.usedOutputTokens };
        const result = await session.promptWithMeta(user, {
          grammar,
          maxTokens: options.maxTokens,
          temperature: options.temperature,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        const text = result.responseText;
        return {
          text,
          promptTokens: meter.usedInputTokens - before.input,
          generatedTokens: meter.usedOutputTokens - before.output,
          truncated: result.stopReason === 'maxTokens',
        };
      },
    };
  }

  private grammarFor(schema: Record<string, unknown>): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      // The schema was checked against the supported subset when the prompt loaded; its exact
      // type is only known at run time, hence the cast.
      grammar = this.llama.createGrammarForJsonSchema(toGrammarSchema(schema) as any) as Promise<LlamaGrammar>;
      this.grammars.set(key, grammar);
    }
    return grammar;
  }

  get busySequences(): number {
    return this.info.sequences - this.free.length;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

/**
 * The llama.cpp bindings for this machine: the best prebuilt backend (CUDA, Vulkan, Metal) with
 * CPU fallback, or the one DOCSIFT_GPU names. Never downloads or compiles llama.cpp at run time.
 */
export function createLlama(options: { gpu: EngineOptions['gpu']; threads: number; logger?: Logger }): Promise<Llama> {
  return getLlama({
    build: 'never',
    gpu: options.gpu === 'cpu' ? false : options.gpu,
    maxThreads: options.threads,
    logLevel: LlamaLogLevel.error,
    logger: (level, message) => {
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) options.logger?.error({ llama: message.trim() }, 'llama.cpp');
    },
  });
}

/** Fails fast, before llama.cpp sees the file, with a message an operator can act on. */
export function checkModelFile(file: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new Error(`model file not found: ${file} (set DOCSIFT_MODEL to a .gguf file; 'docsift make-test-model FILE' writes a tiny test model)`);
  }
  if (!stat.isFile()) throw new Error(`model path is not a file: ${file}`);
  const fd = fs.openSync(file, 'r');
  const magic = Buffer.alloc(4);
  try {
    fs.readSync(fd, magic, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (magic.toString('latin1') !== 'GGUF') throw new Error(`not a GGUF model file: ${file} (it does not start with the GGUF magic bytes)`);
}

/** The model's sha256, recorded on every result so a result can be traced to exact weights. */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
