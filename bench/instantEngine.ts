import type { Config } from '../src/config/index.js';
import type { Answer, ChatTurn, Engine, ModelInfo, ModelSequence } from '../src/model/index.js';

/**
 * Bench-only: a model stage that answers at once with a valid all-null record, so that what is
 * measured is everything around the model (Redis, BullMQ, text stage, pipeline code, outputs).
 */
export class InstantEngine implements Engine {
  readonly info: ModelInfo;
  private busy = 0;
  /** The all-null answer per schema object, made once (the pipeline passes the same objects). */
  private readonly answers = new WeakMap<object, string>();

  constructor(_config: Config, sequences: number) {
    this.info = { file: 'instant.gguf', sha256: '0'.repeat(64), lora: [], backend: 'none', binary: 'none', backendReason: 'none', sequences, contextSize: 1 << 20, threads: 1, loadMs: 0 };
  }

  private answer(schema: { enum?: string[]; properties?: Record<string, { type?: unknown }> }): string {
    let text = this.answers.get(schema);
    if (text === undefined) {
      text = schema.enum
        ? JSON.stringify(schema.enum[0])
        : JSON.stringify(Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, v.type === 'array' ? [] : null])));
      this.answers.set(schema, text);
    }
    return text;
  }

  countTokens(text: string): number {
    return Math.ceil(text.length / 4);
  }

  async withSequence<T>(fn: (sequence: ModelSequence) => Promise<T>): Promise<T> {
    this.busy++;
    try {
      return await fn({
        contextSize: this.info.contextSize,
        countTokens: (turns: ChatTurn[]) => turns.reduce((n, t) => n + this.countTokens(t.text), 0),
        generate: async (_turns, options): Promise<Answer> => {
          const text = this.answer(options.schema as Parameters<InstantEngine['answer']>[0]);
          return { text, promptTokens: 0, reusedTokens: 0, generatedTokens: 0, forcedTokens: 0, tokens: [], evaluatedTokens: 0, truncated: false, confidence: 1, fieldConfidence: {} };
        },
      });
    } finally {
      this.busy--;
    }
  }

  get busySequences(): number {
    return this.busy;
  }

  async dispose(): Promise<void> {}
}
