import fs from 'node:fs';
import path from 'node:path';
import {
  resolveChatWrapper,
  type ChatHistoryItem, type ChatWrapper, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type Token,
} from 'node-llama-cpp';
import { DocsiftError, isOutOfMemory } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { answerGbnf, compileAnswer, type AnswerNode } from './answerGrammar.js';
import { decodeJson, type DecodeOptions, type Decoded, type DecoderKind } from './decoder.js';
import { toGrammarSchema } from './grammarSchema.js';
import { hashFile } from './hashFile.js';
import { loadLlama } from './gpu/load.js';
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
  /** Reuse the prefix a sequence already holds (default true; the bench turns it off to measure it). */
  prefixReuse?: boolean;
}

export interface ModelInfo {
  file: string;
  sha256: string;
  /** LoRA adapter file names, in order. */
  lora: string[];
  /** cuda, vulkan, metal or cpu. */
  backend: string;
  /** Which llama.cpp build (cuda, cuda-fallback, vulkan, cpu, local:<folder>) and the plan's reason for it (src/model/gpu/plan.ts). */
  binary: string;
  backendReason: string;
  sequences: number;
  contextSize: number;
  threads: number;
  loadMs: number;
}

export interface AskOptions {
  /** JSON Schema (the supported subset) that constrains the answer. */
  schema: Record<string, unknown>;
  /** Tokens of the answer at most, forced and sampled together. */
  maxTokens: number;
  temperature: number;
  /** "walk" (default): jump-forward over the schema; "grammar": node-llama-cpp's JSON-schema grammar, every token sampled (the reference). */
  decoder?: DecoderKind | undefined;
  signal?: AbortSignal | undefined;
  /** Tests only: teacher-forces a random-weight model (see DecodeOptions.steer). */
  steer?: DecodeOptions['steer'];
}

/** The decoder's answer (its text, tokens, sampled and forced counts, confidence) and what its prompt cost. */
export interface Answer extends Decoded {
  /** Prompt tokens evaluated for this answer (the rest of the prompt was already in the sequence). */
  promptTokens: number;
  /** Prompt tokens reused from what the sequence held: the fixed prefix, the document for a second question. */
  reusedTokens: number;
}

/** One turn of a conversation; a conversation is rendered with the model's own chat template. */
export interface ChatTurn {
  role: 'system' | 'user' | 'model';
  text: string;
}

/** A sequence of the context, borrowed for the length of one document's questions. */
export interface ModelSequence {
  /** Tokens the sequence holds at most. */
  readonly contextSize: number;
  /** Prompt tokens of this conversation, template and answer prefix included. */
  countTokens(turns: ChatTurn[]): number;
  /**
   * Answers the conversation's last turn under the schema. The longest prefix the sequence
   * already holds (system prompt, document, earlier answers) is reused, not evaluated again.
   */
  generate(turns: ChatTurn[], options: AskOptions): Promise<Answer>;
}

/** What the pipeline needs of a model; ModelEngine is the real one, the bench has an instant one. */
export interface Engine {
  readonly info: ModelInfo;
  countTokens(text: string): number;
  withSequence<T>(fn: (sequence: ModelSequence) => Promise<T>): Promise<T>;
  readonly busySequences: number;
  dispose(): Promise<void>;
}

/** Counters since load, for the bench and metrics. */
export interface EngineStats {
  answers: number;
  promptTokens: number;
  reusedTokens: number;
  generatedTokens: number;
  forcedTokens: number;
  evaluatedTokens: number;
}

/**
 * The only piece of docsift that talks to node-llama-cpp. One per worker process: the model is
 * loaded once, one context holds as many sequences as the worker runs jobs (llama.cpp batches
 * their decode steps together), and each job borrows a sequence for its document. A sequence
 * keeps its evaluated tokens between jobs, so the fixed start of the next prompt (template and
 * instructions) is not evaluated again.
 */
export class ModelEngine implements Engine {
  private readonly free: LlamaContextSequence[];
  private readonly waiting: Array<(seq: LlamaContextSequence) => void> = [];
  private readonly grammars = new Map<string, Promise<{ answer: AnswerNode; grammar: LlamaGrammar }>>();
  private readonly chatWrapper: ChatWrapper;
  private disposed = false;
  readonly stats: EngineStats = { answers: 0, promptTokens: 0, reusedTokens: 0, generatedTokens: 0, forcedTokens: 0, evaluatedTokens: 0 };

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly info: ModelInfo,
    private readonly tuning: { prefixReuse: boolean },
  ) {
    this.free = Array.from({ length: context.totalSequences }, () => context.getSequence());
    this.chatWrapper = resolveChatWrapper(model);
  }

  static async load(options: EngineOptions): Promise<ModelEngine> {
    const started = performance.now();
    const file = path.resolve(options.modelPath);
    checkModelFile(file);
    const sha256 = hashFile(file);
    const { llama, loaded } = await loadLlama(options);
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
      backend: loaded.backend,
      binary: loaded.binary,
      backendReason: loaded.code,
      sequences: context.totalSequences,
      contextSize: context.contextSize,
      threads: options.threads,
      loadMs: Math.round(performance.now() - started),
    };
    return new ModelEngine(llama, model, context, info, { prefixReuse: options.prefixReuse ?? true });
  }

  countTokens(text: string): number {
    return this.model.tokenize(text).length;
  }

  /** Borrows a sequence for one document; waits while all are busy. */
  async withSequence<T>(fn: (sequence: ModelSequence) => Promise<T>): Promise<T> {
    if (this.disposed) throw new DocsiftError('MODEL_ERROR', 'the model engine is shut down');
    let sequence = this.free.pop() ?? (await new Promise<LlamaContextSequence>((resolve) => this.waiting.push(resolve)));
    try {
      return await fn(this.borrowed(sequence));
    } catch (err) {
      if (err instanceof DocsiftError || (err instanceof Error && err.name === 'AbortError')) throw err;
      // A failed decode (a GPU allocation, a lost context) leaves the sequence's cache and its
      // token record in an unknown state; the next document must not reuse that prefix.
      sequence = await this.reset(sequence);
      const code = isOutOfMemory(err) ? 'OUT_OF_MEMORY' : 'MODEL_ERROR';
      throw new DocsiftError(code, `inference failed: ${(err as Error).message}`, { cause: err });
    } finally {
      const next = this.waiting.shift();
      if (next) next(sequence);
      else this.free.push(sequence);
    }
  }

  /** Empties a sequence after a failure; if even that fails, replaces it with a fresh one. */
  private async reset(sequence: LlamaContextSequence): Promise<LlamaContextSequence> {
    try {
      await sequence.clearHistory();
      return sequence;
    } catch {
      sequence.dispose();
      return this.context.getSequence();
    }
  }

  /** Text to tokens as the decoder tokenizes answer text (special-token markup stays text). */
  tokenize(text: string): Token[] {
    return this.model.tokenize(text, false, 'trimLeadingSpace');
  }

  detokenize(tokens: readonly Token[], specialTokens = false): string {
    return this.model.detokenize(tokens, specialTokens);
  }

  isSpecialToken(token: Token): boolean {
    return this.model.isSpecialToken(token);
  }

  /** The prompt's tokens: the conversation through the model's own chat template, ready for the answer. */
  renderPrompt(turns: ChatTurn[]): Token[] {
    const chatHistory: ChatHistoryItem[] = turns.map((t) => t.role === 'model' ? { type: 'model', response: [t.text] } : { type: t.role, text: t.text });
    chatHistory.push({ type: 'model', response: [] });
    return this.chatWrapper.generateContextState({ chatHistory }).contextText.tokenize(this.model.tokenizer);
  }

  private borrowed(sequence: LlamaContextSequence): ModelSequence {
    return {
      contextSize: sequence.contextSize,
      countTokens: (turns) => this.renderPrompt(turns).length,
      generate: async (turns, options) => {
        const tokens = this.renderPrompt(turns);
        let reused = 0;
        if (this.tuning.prefixReuse) {
          // Keep the longest prefix the sequence already holds; at least one token is evaluated
          // so that there are logits to sample from.
          reused = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
          if (reused < sequence.nextTokenIndex) await sequence.eraseContextTokenRanges([{ start: reused, end: sequence.nextTokenIndex }]);
        } else {
          await sequence.clearHistory();
        }
        const decoder = options.decoder ?? 'walk';
        const shape = await this.grammarFor(options.schema, decoder);
        const { maxTokens, temperature, signal, steer } = options;
        const decoded = await decodeJson(sequence, tokens.slice(reused), { decoder, ...shape, maxTokens, temperature, signal, steer });
        const answer: Answer = { ...decoded, promptTokens: tokens.length - reused, reusedTokens: reused };
        this.stats.answers++;
        for (const k of ['promptTokens', 'reusedTokens', 'generatedTokens', 'forcedTokens', 'evaluatedTokens'] as const) this.stats[k] += answer[k];
        return answer;
      },
    };
  }

  /** The answer's shape and its grammar for this decoder, built once per schema. */
  private grammarFor(schema: Record<string, unknown>, decoder: DecoderKind): Promise<{ answer: AnswerNode; grammar: LlamaGrammar }> {
    const key = `${decoder}:${JSON.stringify(schema)}`;
    let entry = this.grammars.get(key);
    if (!entry) {
      const clean = toGrammarSchema(schema) as Record<string, unknown>;
      const answer = compileAnswer(clean);
      // The schema was checked against the supported subset when the prompt loaded; its exact
      // type is only known at run time, hence the cast.
      const grammar = decoder === 'walk'
        ? this.llama.createGrammar({ grammar: answerGbnf(answer) })
        : this.llama.createGrammarForJsonSchema(clean as any);
      entry = grammar.then((g) => ({ answer, grammar: g }));
      this.grammars.set(key, entry);
    }
    return entry;
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
