import type { Config } from '../src/config/index.js';
import type { Answer, ChatTurn, Engine, ModelInfo, ModelSequence } from '../src/model/index.js';

/**
 * Bench-only: a model stage that answers at once with a valid all-null record, so that what is
 * measured is everything around the model (Redis, BullMQ, text stage, pipeline code, outputs).
 */
export class InstantEngine implements Engine {
  readonly info: ModelInfo;
  private busy = 0;
  private readonly answers = new Map<string, string>();

  constructor(config: Config, sequences: number) {
    this.info = { file: 'instant.gguf', sha256: '0'.repeat(64), lora: [], backend: 'none', sequences, contextSize: 1 << 20, threads: 1, loadMs: 0 };
    for (const type of config.prompts.types.values()) {
      const props = Object.keys((type.schema.properties ?? {}) as object);
      this.answers.set(JSON.stringify(type.schema), JSON.stringify(Object.fromEntries(props.map((k) => [k, (type.schema.properties as Record<string, { type?: unknown }>)[k]!.type === 'array' ? [] : null]))));
    }
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
          const enumValues = (options.schema as { enum?: string[] }).enum;
          const text = enumValues ? JSON.stringify(enumValues[0]) : this.answers.get(JSON.stringify(options.schema)) ?? '{}';
          return { text, promptTokens: 0, reusedTokens: 0, generatedTokens: 0, forcedTokens: 0, evaluatedTokens: 0, truncated: false, confidence: 1, fieldConfidence: {} };
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
