import type { Token } from 'node-llama-cpp';
import type { ChatTurn, Engine, EngineStats, ModelEngine, ModelInfo, ModelSequence } from '../src/model/index.js';
import { invoiceAnswer } from './invoices.js';

/**
 * Bench-only (--tokenizer): the real engine, teacher-forced toward each invoice's true fields.
 * A random-weight model's own answers are random in length (with the Qwen shape they never end);
 * steered, every answer has a real answer's values, written in the real tokenizer's natural
 * tokens through the real grammar and sampler, so token counts, decode steps and the cost per
 * step are those of a model that reads the invoice right. The steering is a logit bias, which
 * costs what any token bias costs.
 */
export class SteeredEngine implements Engine {
  constructor(private readonly inner: ModelEngine) {}

  get info(): ModelInfo { return this.inner.info; }
  get stats(): EngineStats { return this.inner.stats; }
  get busySequences(): number { return this.inner.busySequences; }
  countTokens(text: string): number { return this.inner.countTokens(text); }
  dispose(): Promise<void> { return this.inner.dispose(); }

  withSequence<T>(fn: (sequence: ModelSequence) => Promise<T>): Promise<T> {
    return this.inner.withSequence((seq) => fn({
      contextSize: seq.contextSize,
      countTokens: (turns) => seq.countTokens(turns),
      generate: (turns, options) => seq.generate(turns, { ...options, steer: this.steerFor(turns) }),
    }));
  }

  private steerFor(turns: ChatTurn[]): ((sofar: readonly Token[]) => Token | undefined) | undefined {
    const answer = turns.map((t) => invoiceAnswer(t.text)).find((a) => a !== undefined);
    if (!answer) return undefined;
    const target = this.inner.tokenize(JSON.stringify(answer));
    return (sofar) => (sofar.every((t, i) => t === target[i]) ? target[sofar.length] : undefined);
  }
}
