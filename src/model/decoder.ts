import { LlamaGrammarEvaluationState, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type Token } from 'node-llama-cpp';

/**
 * Schema-constrained JSON generation on one sequence, with jump-forward decoding.
 *
 * A plain grammar loop samples every token of the answer, one decode step each, including the
 * keys, braces, quotes and commas that the schema already fixes. Here the schema is walked
 * instead: text the schema admits in only one way (`{"invoice_number": `, `, "lines": [`, `}`) is
 * appended in one batched evaluation together with the previous value's last token, and only
 * values are sampled, each under a grammar for that value's own schema. Array lengths are the
 * model's choice (`]` or another item), sampled under a two-way grammar.
 *
 * Walking the schema also tells which tokens belong to which field, so each value's joint
 * probability under the constrained distribution is its confidence (issue 7), for free.
 */

export interface DecodeOptions {
  /** The grammar form of the schema (toGrammarSchema). */
  schema: Record<string, unknown>;
  maxTokens: number;
  temperature: number;
  /** false: sample the whole answer under one grammar, one token per step (the bench's baseline). */
  jumpForward: boolean;
  signal?: AbortSignal | undefined;
  grammarFor(schema: Record<string, unknown>): Promise<LlamaGrammar>;
  /** `]` or another object item: "first" after `[`, "next" after an item. */
  choiceGrammar(kind: 'first' | 'next'): Promise<LlamaGrammar>;
}

export interface Decoded {
  text: string;
  /** Tokens sampled, one decode step each (end-of-value tokens included). */
  sampledTokens: number;
  /** Tokens the schema fixed, appended in batches without sampling. */
  forcedTokens: number;
  /** Tokens the model evaluated: the prompt passed in, forced tokens and sampled ones (not the final end-of-value ones). */
  evaluatedTokens: number;
  /** Stopped at maxTokens: the JSON is cut off. */
  truncated: boolean;
  /** Joint probability of every sampled token of the answer. */
  confidence: number;
  /** Per value ("vendor", "lines.0.amount"): the joint probability of its tokens. Empty without jump-forward. */
  fieldConfidence: Record<string, number>;
}

class Truncated extends Error {}

/** Evaluates `prompt` (tokens not yet in the sequence, at least one) and generates the answer. */
export async function decodeJson(sequence: LlamaContextSequence, prompt: Token[], options: DecodeOptions): Promise<Decoded> {
  if (prompt.length === 0) throw new Error('decodeJson needs at least one prompt token to sample from');
  const run = new Run(sequence, prompt, options);
  try {
    if (options.jumpForward) await run.value(options.schema, '');
    else await run.sample(await options.grammarFor(options.schema), '');
  } catch (err) {
    if (!(err instanceof Truncated)) throw err;
    run.truncated = true;
  } finally {
    await run.close();
  }
  return {
    text: run.text,
    sampledTokens: run.sampled,
    forcedTokens: run.forced,
    evaluatedTokens: run.evaluated,
    truncated: run.truncated,
    confidence: Math.exp(run.logp),
    fieldConfidence: run.fieldConfidence,
  };
}

type Schema = Record<string, unknown>;

class Run {
  text = '';
  sampled = 0;
  forced = 0;
  evaluated = 0;
  logp = 0;
  truncated = false;
  readonly fieldConfidence: Record<string, number> = {};
  private readonly model: LlamaModel;
  /** Tokens to evaluate with the next sampling step: the prompt, the last sampled token, forced text. */
  private pending: Token[];
  private pendingForced = 0;
  private grammarState: LlamaGrammarEvaluationState | undefined;
  private generator: AsyncGenerator<{ token: Token; confidence: number }, void, Token[]> | undefined;

  constructor(private readonly sequence: LlamaContextSequence, prompt: Token[], private readonly options: DecodeOptions) {
    this.model = sequence.model;
    this.pending = prompt;
  }

  async value(schema: Schema, path: string, opened = false): Promise<void> {
    if (isObject(schema)) return this.object(schema, path, opened);
    if (isArrayOfObjects(schema)) return this.array(schema, path);
    await this.sample(await this.options.grammarFor(schema), path);
  }

  private async object(schema: Schema, path: string, opened: boolean): Promise<void> {
    const properties = schema.properties as Record<string, Schema>;
    let first = true;
    for (const [key, sub] of Object.entries(properties)) {
      this.force(`${first ? (opened ? '' : '{') : ','}${JSON.stringify(key)}:`);
      first = false;
      await this.value(sub, path ? `${path}.${key}` : key);
    }
    this.force('}');
  }

  private async array(schema: Schema, path: string): Promise<void> {
    const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
    const max = typeof schema.maxItems === 'number' ? schema.maxItems : Infinity;
    const items = schema.items as Schema;
    this.force('[');
    for (let i = 0; i < max; i++) {
      if (i < min) {
        this.force(i === 0 ? '{' : ',{');
      } else {
        const choice = await this.sample(await this.options.choiceGrammar(i === 0 ? 'first' : 'next'), '');
        if (choice.trimEnd().endsWith(']')) return;
      }
      await this.object(items, `${path}.${i}`, true);
    }
    this.force(']');
  }

  private force(text: string): void {
    this.text += text;
    const tokens = this.model.tokenize(text, false, 'trimLeadingSpace');
    this.pending.push(...tokens);
    this.pendingForced += tokens.length;
  }

  /**
   * Samples one value under `grammar`. A string, null, boolean, array or object is over at its
   * last character, known without another decode step; a number only when the model ends it
   * (end-of-generation is then the only thing the grammar allows besides more digits).
   */
  async sample(grammar: LlamaGrammar, path: string): Promise<string> {
    this.grammarState = new LlamaGrammarEvaluationState({ model: this.model, grammar });
    const tokens: Token[] = [];
    let logp = 0;
    for (;;) {
      if (this.sampled >= this.options.maxTokens) throw new Truncated();
      if (this.options.signal?.aborted) throw abortError(this.options.signal);
      const next = await this.step();
      this.sampled++;
      logp += Math.log(Math.max(next.confidence, 1e-12));
      if (this.model.isEogToken(next.token)) break;
      tokens.push(next.token);
      this.pending = [next.token];
      if (completeNonNumber(this.model.detokenize(tokens))) break;
    }
    this.logp += logp;
    if (path) this.fieldConfidence[path] = Math.exp(logp);
    const text = this.model.detokenize(tokens);
    this.text += text;
    return text;
  }

  /** Evaluates the pending tokens in one batch and samples the next token from the last one's logits. */
  private async step(): Promise<{ token: Token; confidence: number }> {
    const tokens = this.pending;
    if (tokens.length === 0) throw new Error('decoder: nothing to evaluate before sampling');
    this.forced += this.pendingForced;
    this.evaluated += tokens.length;
    this.pending = [];
    this.pendingForced = 0;
    let result: IteratorResult<{ token: Token; confidence: number }, void>;
    if (!this.generator) {
      this.generator = this.sequence.evaluateWithMetadata(tokens, { confidence: true }, {
        temperature: this.options.temperature,
        grammarEvaluationState: () => this.grammarState,
        yieldEogToken: true,
      }) as AsyncGenerator<{ token: Token; confidence: number }, void, Token[]>;
      result = await this.generator.next();
    } else {
      result = await this.generator.next(tokens);
    }
    if (result.done) throw new Error('decoder: generation ended before the value was complete');
    return result.value;
  }

  async close(): Promise<void> {
    await this.generator?.return();
  }
}

function completeNonNumber(text: string): boolean {
  const last = text.trimEnd().at(-1);
  // Only these characters can end a complete non-number JSON value; parse only then.
  if (last !== '"' && last !== 'l' && last !== 'e' && last !== ']' && last !== '}') return false;
  try {
    return typeof JSON.parse(text) !== 'number';
  } catch {
    return false;
  }
}

function isObject(schema: Schema): boolean {
  return schema.type === 'object' && typeof schema.properties === 'object' && schema.properties !== null && Object.keys(schema.properties).length > 0;
}

function isArrayOfObjects(schema: Schema): boolean {
  return schema.type === 'array' && typeof schema.items === 'object' && schema.items !== null && isObject(schema.items as Schema);
}

function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const err = new Error('the generation was aborted');
  err.name = 'AbortError';
  return err;
}
