import { LlamaGrammarEvaluationState, TokenBias, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type Token } from 'node-llama-cpp';
import { firstChars, type AnswerNode } from './answerGrammar.js';

/**
 * Schema-constrained JSON generation on one sequence.
 *
 * "walk" (the default): one grammar for the whole answer constrains every sampled token, and the
 * schema is walked alongside, so text the schema admits in only one way (`,"date":`, `}`, the rest
 * of `null` after `n`, an enum's common prefix) is appended in one batched evaluation instead of
 * one decode step per token (jump-forward). Only values and array lengths are sampled.
 *
 * Tokens are the model's natural ones: because the grammar spans the whole answer, a sampled token
 * may run from a value into the text after it (`","`, `"}]`, `1,"`), and the last token of every
 * fixed stretch is held back (not evaluated) so the model may write it merged with what follows
 * (`":"` rather than `":` then `"`). Numbers end on their delimiter, never on end-of-generation.
 *
 * "grammar": node-llama-cpp's own JSON-schema grammar, every token sampled one step each; the
 * reference to measure the walk against, on the same documents and model.
 *
 * Both count forced and sampled tokens against maxTokens and never let the context shift: a
 * sequence that fills up is cut off (truncated), never slid, so the prompt is never erased.
 */

export type DecoderKind = 'walk' | 'grammar';

export interface DecodeOptions {
  decoder: DecoderKind;
  /** The answer's shape (compileAnswer), walked by "walk". */
  answer: AnswerNode;
  /** The whole-answer grammar of the chosen decoder. */
  grammar: LlamaGrammar;
  /** Tokens of the answer at most, forced and sampled together. */
  maxTokens: number;
  temperature: number;
  signal?: AbortSignal | undefined;
  /**
   * Tests only: a token to favour at each step, given the answer's tokens so far (teacher forcing
   * a random-weight model through the real grammar and sampler).
   */
  steer?: ((answerTokens: readonly Token[]) => Token | undefined) | undefined;
}

export interface Decoded {
  text: string;
  /** The answer's tokens in order, forced and sampled, as the sequence holds them. */
  tokens: Token[];
  /** Tokens sampled, one decode step each. */
  generatedTokens: number;
  /** Tokens the schema fixed, appended without sampling (the last ones of the answer included). */
  forcedTokens: number;
  /** Tokens the model evaluated: the prompt passed in, forced tokens and sampled ones. */
  evaluatedTokens: number;
  /** Stopped at maxTokens or at the end of the context: the JSON is cut off. */
  truncated: boolean;
  /** The lowest confidence of any value (1 when no value was sampled). */
  confidence: number;
  /**
   * Per value path ("vendor", "lines.0.amount"): the probability of its least likely content token
   * under the grammar-masked distribution at temperature 1 (Run.attribute). Empty for "grammar".
   */
  fieldConfidence: Record<string, number>;
}

class Truncated extends Error {}

/** Evaluates `prompt` (tokens not yet in the sequence, at least one) and generates the answer. */
export async function decodeJson(sequence: LlamaContextSequence, prompt: Token[], options: DecodeOptions): Promise<Decoded> {
  if (prompt.length === 0) throw new Error('decodeJson needs at least one prompt token to sample from');
  const run = new Run(sequence, prompt, options);
  try {
    if (options.decoder === 'walk') {
      await run.value(options.answer, '');
      run.finish();
    } else {
      await run.sampleToEnd();
    }
  } catch (err) {
    if (!(err instanceof Truncated)) throw err;
    run.truncated = true;
  } finally {
    await run.close();
  }
  const fields = Object.values(run.fieldLogp);
  return {
    text: run.text,
    tokens: run.tokens,
    generatedTokens: run.sampled,
    forcedTokens: run.forced,
    evaluatedTokens: run.evaluated,
    truncated: run.truncated,
    confidence: Math.exp(Math.min(run.rootLogp, ...fields)),
    fieldConfidence: Object.fromEntries(Object.entries(run.fieldLogp).map(([p, l]) => [p, Math.exp(l)])),
  };
}

interface Step {
  token: Token;
  /** log p of the token under the grammar-masked distribution at temperature 1. */
  logp: number;
}

class Run {
  /** The answer as the walker has read it (forced text included). */
  text = '';
  readonly tokens: Token[] = [];
  sampled = 0;
  forced = 0;
  evaluated = 0;
  truncated = false;
  /** Per value path: the lowest log-probability of its content tokens. */
  readonly fieldLogp: Record<string, number> = {};
  rootLogp = 0;
  private readonly model: LlamaModel;
  private readonly state: LlamaGrammarEvaluationState;
  /** Sampled text the walker has not read yet. */
  private buf = '';
  /** Text the schema fixed, read by the walker, not yet evaluated. */
  private queue = '';
  /** Held-back fixed text: the model's next token must start with it (or be a prefix of it). */
  private lag = '';
  /** Tokens to evaluate before the next sample: the prompt, the last sampled token, forced tokens. */
  private pending: Token[];
  /** Sampled tokens whose text is not complete UTF-8 yet. */
  private undecoded: Token[] = [];
  private ended = false;
  /** The value the walker is reading: sampled tokens count toward its confidence; null between values. */
  private at: string | null = null;
  private generator: AsyncGenerator<{ token: Token; confidence?: number; probabilities?: Map<Token, number> }, void, Token[]> | undefined;

  constructor(private readonly sequence: LlamaContextSequence, prompt: Token[], private readonly options: DecodeOptions) {
    this.model = sequence.model;
    this.pending = prompt;
    this.state = new LlamaGrammarEvaluationState({ model: this.model, grammar: options.grammar });
  }

  // ---- the walk: reads the answer through the schema, forcing what it fixes -------------------

  async value(node: AnswerNode, path: string): Promise<void> {
    switch (node.kind) {
      case 'object': return this.object(node, path);
      case 'array': return this.array(node, path);
      case 'string': return this.content(path, () => this.string());
      case 'number': return this.content(path, () => this.number());
      case 'literal': return this.content(path, () => this.literal(node.texts));
      case 'alt': {
        // The model's first character picks the alternative: a content decision (null or a value).
        const option = await this.content(path, async () => {
          const c = await this.peek();
          const first = c !== undefined && /[-0-9]/.test(c) ? '0' : c;
          return node.options.find((o) => first !== undefined && firstChars(o).has(first));
        });
        if (!option) throw new Error(`decoder: the grammar admitted ${JSON.stringify(this.buf[0])} where ${path || 'the answer'} starts`);
        return this.value(option, path);
      }
    }
  }

  private async object(node: Extract<AnswerNode, { kind: 'object' }>, path: string): Promise<void> {
    let first = true;
    for (const [key, sub] of node.properties) {
      this.expect(`${first ? '{' : ','}${JSON.stringify(key)}:`);
      first = false;
      await this.value(sub, path ? `${path}.${key}` : key);
    }
    this.expect('}');
  }

  private async array(node: Extract<AnswerNode, { kind: 'array' }>, path: string): Promise<void> {
    this.expect('[');
    for (let i = 0; i < node.max; i++) {
      // Whether there is another item is the model's choice once minItems are written.
      if (i >= node.min && (await this.peek()) === ']') break;
      if (i > 0) this.expect(',');
      await this.value(node.items, `${path}.${i}`);
    }
    this.expect(']');
  }

  private async string(): Promise<void> {
    this.expect('"');
    for (;;) {
      const c = await this.read();
      if (c === '"') return;
      if (c === '\\') await this.read();
    }
  }

  /** A number is over when the next character is not part of it: the delimiter the model wrote after it. */
  private async number(): Promise<void> {
    for (;;) {
      const c = await this.peek();
      if (c === undefined || !/[-0-9.]/.test(c)) return;
      await this.read();
    }
  }

  /** An enum member, null, true or false: what the candidates share is forced, the model picks where they differ. */
  private async literal(texts: string[]): Promise<void> {
    let read = '';
    for (;;) {
      const left = texts.filter((t) => t.startsWith(read));
      if (left.length === 1) return this.expect(left[0]!.slice(read.length));
      const common = commonPrefix(left.map((t) => t.slice(read.length)));
      if (common) {
        this.expect(common);
        read += common;
        continue;
      }
      if (left.includes(read)) {
        // e.g. 1 among 1 and 12: the model ends it (its next character is a delimiter) or goes on.
        const c = await this.peek();
        if (!left.some((t) => t.length > read.length && c !== undefined && t.startsWith(c, read.length))) return;
      }
      read += await this.read();
    }
  }

  /** Runs `read` with the sampled tokens counted toward the value at `path`. */
  private async content<T>(path: string, read: () => Promise<T>): Promise<T> {
    const outer = this.at;
    this.at = path;
    // A value the schema fixes whole (a one-member enum) is certain: 1, not absent.
    if (path !== '' && !(path in this.fieldLogp)) this.fieldLogp[path] = 0;
    try {
      return await read();
    } finally {
      this.at = outer;
    }
  }

  /** The rest of the answer after the walk, fixed text (`}`, `]}`) appended without sampling. */
  finish(): void {
    if (this.buf.trim() !== '' || this.lag !== '') throw new Error(`decoder: text after the end of the answer: ${JSON.stringify(this.lag + this.buf)}`);
    if (this.queue) {
      const tokens = this.tokenize(this.queue);
      this.budget(tokens.length);
      this.tokens.push(...tokens);
      this.forced += tokens.length;
      this.queue = '';
    }
  }

  // ---- reading the answer: fixed text, sampled text -------------------------------------------

  /** Text the schema fixes here: matched against what the model already wrote, else queued to force. */
  private expect(text: string): void {
    for (const c of text) {
      if (this.buf !== '') {
        if (!this.buf.startsWith(c)) throw new Error(`decoder: the grammar admitted ${JSON.stringify(this.buf)} where the schema fixes ${JSON.stringify(text)}`);
        this.buf = this.buf.slice(c.length);
      } else {
        this.queue += c;
      }
      this.text += c;
    }
  }

  private async peek(): Promise<string | undefined> {
    while (this.buf === '' && !this.ended) await this.sampleMore();
    return this.buf === '' ? undefined : String.fromCodePoint(this.buf.codePointAt(0)!);
  }

  private async read(): Promise<string> {
    const c = await this.peek();
    if (c === undefined) throw new Error('decoder: the answer ended inside a value');
    this.buf = this.buf.slice(c.length);
    this.text += c;
    return c;
  }

  /** Forces the queued fixed text but its last token, then samples one token. */
  private async sampleMore(): Promise<void> {
    if (this.queue) {
      const tokens = this.tokenize(this.queue);
      const keep = tokens.slice(0, -1);
      const held = this.model.detokenize(tokens.slice(-1), false, keep.length ? keep : this.tokens.slice(-4));
      // Hold the last token back only when the split is clean (not inside a multi-byte character).
      const clean = keep.length === 0 ? held === this.queue : this.model.detokenize(keep, false, this.tokens.slice(-4)) + held === this.queue;
      const force = clean ? keep : tokens;
      this.lag = clean ? held : '';
      this.queue = '';
      this.budget(force.length);
      for (const t of force) acceptToken(this.model, this.state, t);
      this.pending.push(...force);
      this.tokens.push(...force);
      this.forced += force.length;
    }
    const step = await this.step();
    this.attribute(step.logp);
    if (this.model.isEogToken(step.token)) {
      this.ended = true;
      return;
    }
    this.pending = [step.token];
    this.tokens.push(step.token);
    this.undecoded.push(step.token);
    let text = this.model.detokenize(this.undecoded, false, this.tokens.slice(-this.undecoded.length - 4, -this.undecoded.length));
    if (text.endsWith('\uFFFD') && this.undecoded.length < 4) return; // the rest of a character comes next
    this.undecoded = [];
    if (this.lag) {
      if (text.startsWith(this.lag)) {
        text = text.slice(this.lag.length);
        this.lag = '';
      } else if (this.lag.startsWith(text)) {
        // The model wrote part of the held-back text; the rest is fixed again.
        this.queue = this.lag.slice(text.length);
        this.lag = '';
        return;
      } else {
        throw new Error(`decoder: the grammar admitted ${JSON.stringify(text)} where ${JSON.stringify(this.lag)} is fixed`);
      }
    }
    this.buf += text;
  }

  /**
   * Confidence: each sampled token's probability under the grammar-masked distribution at
   * temperature 1, counted toward the value being read when it was sampled (its first character,
   * its characters, its end: a token that closes a string or a number belongs to that value).
   * Array lengths and fixed text count toward nothing. A value's confidence is its least likely
   * token: one uncertain digit makes an amount uncertain however sure the others are (a mean over
   * ten tokens would hide it), and it does not shrink with the value's length as a product does.
   */
  private attribute(logp: number): void {
    if (this.at === null) return;
    const path = this.at;
    if (path === '') this.rootLogp = Math.min(this.rootLogp, logp);
    else this.fieldLogp[path] = Math.min(this.fieldLogp[path] ?? 0, logp);
  }

  // ---- the reference decoder --------------------------------------------------------------------

  /** Samples every token under node-llama-cpp's grammar until end-of-generation or its stop marker. */
  async sampleToEnd(): Promise<void> {
    this.at = '';
    for (;;) {
      const step = await this.step();
      this.attribute(step.logp);
      if (this.model.isEogToken(step.token)) break;
      this.pending = [step.token];
      this.tokens.push(step.token);
      // node-llama-cpp's JSON grammar ends the value with newlines as its stop marker.
      if (/\n\n\n\n$/.test(this.model.detokenize(this.tokens.slice(-4), false))) break;
    }
    this.text = this.model.detokenize(this.tokens, false).trimEnd();
  }

  // ---- one decode step ---------------------------------------------------------------------------

  private tokenize(text: string): Token[] {
    return this.model.tokenize(text, false, 'trimLeadingSpace');
  }

  /** Refuses to go past maxTokens (forced and sampled together) or past the end of the context. */
  private budget(more: number): void {
    const answerTokens = this.sampled + this.forced + more;
    if (answerTokens > this.options.maxTokens) throw new Truncated();
    if (this.sequence.nextTokenIndex + this.pending.length + more > this.sequence.contextSize) throw new Truncated();
  }

  /** Evaluates the pending tokens in one batch and samples the next token from the last one's logits. */
  private async step(): Promise<Step> {
    if (this.options.signal?.aborted) throw abortError(this.options.signal);
    this.budget(1);
    const tokens = this.pending;
    if (tokens.length === 0) throw new Error('decoder: nothing to evaluate before sampling');
    this.evaluated += tokens.length;
    this.pending = [];
    this.sampled++;
    const { temperature, steer } = this.options;
    let result: IteratorResult<{ token: Token; confidence?: number; probabilities?: Map<Token, number> }, void>;
    if (!this.generator) {
      this.generator = this.sequence.evaluateWithMetadata(tokens, { confidence: true, probabilities: temperature > 0 }, {
        temperature,
        grammarEvaluationState: () => this.state,
        yieldEogToken: true,
        // Never slide the window: budget() stops first; this only guards against a mistake there.
        contextShift: { strategy: () => { throw new Error('decoder: the context is full (forced and sampled tokens are budgeted; this is a bug)'); } },
        ...(steer ? { tokenBias: () => steerBias(this.model, steer(this.tokens)) } : {}),
      }) as AsyncGenerator<{ token: Token; confidence?: number; probabilities?: Map<Token, number> }, void, Token[]>;
      result = await this.generator.next();
    } else {
      result = await this.generator.next(tokens);
    }
    if (result.done) throw new Error('decoder: generation ended before the answer was complete');
    const { token, confidence, probabilities } = result.value;
    return { token, logp: temperatureOneLogp(token, temperature, confidence, probabilities) };
  }

  async close(): Promise<void> {
    await this.generator?.return();
  }
}

/**
 * At temperature 0 llama.cpp's confidence is already the grammar-masked softmax of the raw
 * logits. Above 0 the sampler reports probabilities at that temperature over the candidates it
 * kept (top-k, top-p); raising them to the power T and normalising undoes the temperature.
 */
export function temperatureOneLogp(token: Token, temperature: number, confidence: number | undefined, probabilities: Map<Token, number> | undefined): number {
  if (temperature > 0 && probabilities && probabilities.size > 0) {
    let sum = 0;
    for (const p of probabilities.values()) sum += p ** temperature;
    const p = probabilities.get(token) ?? 0;
    return Math.log(Math.max(p ** temperature / sum, 1e-12));
  }
  return Math.log(Math.max(confidence ?? 1, 1e-12));
}

function steerBias(model: LlamaModel, token: Token | undefined): TokenBias {
  const bias = new TokenBias(model.tokenizer);
  return token === undefined ? bias : bias.set(token, { logit: 1000 });
}

/**
 * Tells the grammar that a forced token was written. node-llama-cpp does this for the tokens it
 * samples but has no public call for tokens appended without sampling; this is the binding its
 * own speculative decoding uses (LlamaSampler._acceptTokenOnGrammarEvaluationState), pinned with
 * node-llama-cpp's exact version and covered by the decoder tests.
 */
function acceptToken(model: LlamaModel, state: LlamaGrammarEvaluationState, token: Token): void {
  const internal = model as unknown as { _llama: { _bindings: { AddonSampler: { acceptGrammarEvaluationStateToken(state: unknown, token: Token): void } } } };
  internal._llama._bindings.AddonSampler.acceptGrammarEvaluationStateToken((state as unknown as { _state: unknown })._state, token);
}

function commonPrefix(texts: string[]): string {
  let prefix = texts[0] ?? '';
  for (const t of texts) while (!t.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}

function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const err = new Error('the generation was aborted');
  err.name = 'AbortError';
  return err;
}
