import type { Config, DocTypePrompt, QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { makeValidator, type Answer, type ChatTurn, type Engine, type ModelSequence, type Validator } from '../model/index.js';
import type { ExtractedText } from '../text/index.js';
import { chunkPages, mergeChunks } from './chunks.js';
import { groundFields, type Grounding } from './grounding.js';
import { normaliseFields } from './normalise.js';
import { checkRules, type CheckResult } from './rules.js';
import { CLASSIFY_QUESTION, documentText, extractQuestion, renderDocument, renderReask, renderSystemPrompt } from './prompts.js';

export interface PipelineOutput {
  /** confidence: the joint probability of the label's tokens; null when the label was fixed. */
  classification: { label: string; method: 'model' | 'fixed'; confidence: number | null };
  /** The type whose schema the fields follow; null when the label is "other". */
  documentType: string | null;
  fields: Record<string, unknown> | null;
  /** Per value path ("vendor", "lines.0.amount"): the model's joint probability for the tokens it wrote. */
  confidence: Record<string, number> | null;
  /** prompt: evaluated; reused: already in the sequence; generated: sampled; forced: fixed by the schema, batched. */
  tokens: { prompt: number; reused: number; generated: number; forced: number };
  timings: { classifyMs: number; extractMs: number; validateMs: number };
  /** Re-asks that were needed before the output validated. */
  reasks: number;
  /** Chunks a long document was read in (1 when it fit the context). */
  chunks: number;
  /** Per field, the pages its value came from (every page when the document was read whole). */
  fieldPages: Record<string, number[]> | null;
  /** The document type's business rules on the final fields. */
  checks: CheckResult[];
  /** Per scalar field (arrays item by item), where its value appears in the text; null: nowhere. */
  grounding: Record<string, Grounding | null> | null;
  warnings: string[];
}

export interface PipelineInput {
  text: ExtractedText;
  /** Extract this type without classifying, whatever the queue's pipeline says. */
  documentType?: string;
  signal?: AbortSignal;
  /** Called when a stage starts, for job progress and logs. */
  onStage?: (stage: 'classify' | 'extract', detail?: Record<string, unknown>) => void;
}

const MAX_CHARS_PER_TOKEN = 32;
/** Tokens a chat template adds around the turns (generous). */
const TEMPLATE_MARGIN = 128;

const CLASSIFY_SCHEMA_CACHE = new WeakMap<readonly string[], Record<string, unknown>>();

/**
 * classify -> extract -> validate, for one document. Pure orchestration: it knows prompts,
 * the model engine and schemas, nothing of BullMQ or HTTP, so the worker, tests and the bench
 * run the same code.
 *
 * A document that fits the context is one conversation on one sequence: the queue's fixed system
 * prompt (reused from the sequence's previous document), the document with the classification
 * question, the label, then a one-line extraction question. The document is evaluated once for
 * both answers. A longer one is classified on its opening and extracted chunk by chunk.
 */
export class Pipeline {
  private readonly validators = new Map<string, Validator>();
  private readonly systems = new Map<string, { system: string; fixedTokens: number }>();

  constructor(private readonly config: Config, private readonly queue: QueueConfig, private readonly engine: Engine) {
    for (const [name, type] of config.prompts.types) this.validators.set(name, makeValidator(type.schema));
  }

  async run(input: PipelineInput): Promise<PipelineOutput> {
    const out: PipelineOutput = {
      classification: { label: '', method: 'model', confidence: null },
      documentType: null,
      fields: null,
      confidence: null,
      tokens: { prompt: 0, reused: 0, generated: 0, forced: 0 },
      timings: { classifyMs: 0, extractMs: 0, validateMs: 0 },
      reasks: 0,
      chunks: 1,
      fieldPages: null,
      checks: [],
      grounding: null,
      warnings: [...input.text.warnings],
    };
    const pipeline = this.queue.pipeline;
    const fixedType = input.documentType ?? (pipeline.mode === 'extract' ? pipeline.documentType : undefined);
    if (fixedType) out.classification = { label: fixedType, method: 'fixed', confidence: null };
    const { system, fixedTokens } = this.systemFor(fixedType);
    const full = documentText(input.text);
    const { maxTokens } = this.queue.model;
    const { enabled, maxChunks } = this.queue.model.chunking;
    const contextSize = this.engine.info.contextSize;
    const hopeless = full.length / MAX_CHARS_PER_TOKEN > (contextSize - fixedTokens - maxTokens) * (enabled ? maxChunks : 1);
    let fields: Record<string, unknown> | null;
    if (!enabled || hopeless || fixedTokens + this.engine.countTokens(full) + maxTokens <= contextSize) {
      fields = await this.engine.withSequence((seq) => this.readWhole(seq, system, full, input, out));
    } else {
      fields = await this.readInChunks(system, fixedTokens, input, out);
    }
    if (!fields || !out.documentType) return out;
    const type = this.config.prompts.types.get(out.documentType)!;
    out.warnings.push(...normaliseFields(type.schema as Parameters<typeof normaliseFields>[0], fields));
    out.checks = checkRules(type.rules, fields);
    out.grounding = groundFields(fields, input.text.pages);
    out.fields = fields;
    return out;
  }

  /**
   * The queue's fixed system prompt, and the tokens it and the questions take, for the budget.
   * A classifying queue's covers every label; a fixed type (extract queue, or --type) only that one.
   */
  private systemFor(fixedType: string | undefined): { system: string; fixedTokens: number } {
    const key = this.queue.pipeline.mode === 'classify-extract' ? '' : fixedType ?? '';
    let entry = this.systems.get(key);
    if (!entry) {
      const prompts = this.config.prompts;
      const types = key === ''
        ? prompts.classify.labels.flatMap((l) => prompts.types.get(l) ?? [])
        : [prompts.types.get(key)].filter((t): t is DocTypePrompt => t !== undefined);
      const system = renderSystemPrompt(types, key === '' ? prompts : undefined);
      const longestLabel = prompts.classify.labels.reduce((a, b) => (b.length > a.length ? b : a), '');
      const questions = `${CLASSIFY_QUESTION}"${longestLabel}"${types.map((t) => extractQuestion(t)).reduce((a, b) => (b.length > a.length ? b : a), '')}`;
      entry = { system, fixedTokens: this.engine.countTokens(system + renderDocument('') + questions) + TEMPLATE_MARGIN };
      this.systems.set(key, entry);
    }
    return entry;
  }

  private typeOf(label: string): DocTypePrompt {
    const type = this.config.prompts.types.get(label);
    if (!type) throw new DocsiftError('MODEL_OUTPUT_INVALID', `unknown document type ${JSON.stringify(label)}`);
    return type;
  }

  /** One conversation: [classify], extract. Returns null for "other". */
  private async readWhole(seq: ModelSequence, system: string, full: string, input: PipelineInput, out: PipelineOutput): Promise<Record<string, unknown> | null> {
    const document = renderDocument(full);
    let turns: ChatTurn[] = [{ role: 'system', text: system }];
    if (out.classification.method !== 'fixed') {
      input.onStage?.('classify');
      const started = performance.now();
      turns.push({ role: 'user', text: `${document}\n\n${CLASSIFY_QUESTION}` });
      const answer = await this.classify(seq, turns, input, out);
      turns.push({ role: 'model', text: answer });
      out.timings.classifyMs = Math.round(performance.now() - started);
      if (!this.config.prompts.types.has(out.classification.label)) return null; // "other"
      turns.push({ role: 'user', text: extractQuestion(this.typeOf(out.classification.label)) });
    } else {
      turns.push({ role: 'user', text: `${document}\n\n${extractQuestion(this.typeOf(out.classification.label))}` });
    }
    const type = this.typeOf(out.classification.label);
    out.documentType = type.name;
    input.onStage?.('extract', { documentType: type.name });
    const started = performance.now();
    const { fields, confidence } = await this.extractOn(seq, type, turns, input, out);
    out.timings.extractMs = Math.round(performance.now() - started) - out.timings.validateMs;
    const allPages = input.text.pages.map((_, i) => i + 1);
    out.fieldPages = Object.fromEntries(Object.keys(fields).map((k) => [k, fields[k] === null ? [] : allPages]));
    out.confidence = confidence;
    return fields;
  }

  /** The label's JSON text, as the model wrote it (the next turn repeats it verbatim, so it is reused). */
  private async classify(seq: ModelSequence, turns: ChatTurn[], input: PipelineInput, out: PipelineOutput): Promise<string> {
    const labels = this.config.prompts.classify.labels;
    let schema = CLASSIFY_SCHEMA_CACHE.get(labels);
    if (!schema) {
      schema = { type: 'string', enum: [...labels] };
      CLASSIFY_SCHEMA_CACHE.set(labels, schema);
    }
    this.ensureFits(seq, turns, 16, 'classification');
    const answer = await seq.generate(turns, { schema, maxTokens: 16, temperature: 0, signal: input.signal });
    this.count(out, answer);
    const label = safeJson(answer.text);
    if (typeof label !== 'string' || !labels.includes(label)) {
      throw new DocsiftError('MODEL_OUTPUT_INVALID', `classification answer ${JSON.stringify(answer.text)} is not one of ${labels.join(', ')}`);
    }
    out.classification = { label, method: 'model', confidence: round(answer.confidence) };
    return answer.text;
  }

  /**
   * Classified on the opening pages (model.classifyChars), then extracted chunk by chunk in
   * parallel sequences, merged in code. Never cuts the document silently.
   */
  private async readInChunks(system: string, fixedTokens: number, input: PipelineInput, out: PipelineOutput): Promise<Record<string, unknown> | null> {
    const { maxTokens, classifyChars } = this.queue.model;
    const { maxChunks, overlapChars } = this.queue.model.chunking;
    if (out.classification.method !== 'fixed') {
      input.onStage?.('classify');
      const started = performance.now();
      const full = documentText(input.text);
      const opening = full.slice(0, classifyChars);
      if (opening.length < full.length) out.warnings.push(`CLASSIFIED_ON_OPENING: the classifier read the first ${classifyChars} characters`);
      await this.engine.withSequence((seq) => this.classify(seq, [{ role: 'system', text: system }, { role: 'user', text: `${renderDocument(opening)}\n\n${CLASSIFY_QUESTION}` }], input, out));
      out.timings.classifyMs = Math.round(performance.now() - started);
      if (!this.config.prompts.types.has(out.classification.label)) return null;
    }
    const type = this.typeOf(out.classification.label);
    out.documentType = type.name;
    input.onStage?.('extract', { documentType: type.name });
    const started = performance.now();
    const budget = this.engine.info.contextSize - fixedTokens - maxTokens;
    const chunks = chunkPages(input.text.pages, budget, (s) => this.engine.countTokens(s), overlapChars);
    if (chunks.length > maxChunks) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the document needs ${chunks.length} chunks of ${budget} tokens; the queue allows ${maxChunks} (model.chunking.maxChunks)`);
    }
    out.chunks = chunks.length;
    out.warnings.push(`CHUNKED: the document was longer than the context and was read in ${chunks.length} chunks`);
    const question = extractQuestion(type);
    const results = await Promise.all(chunks.map((chunk) => this.engine.withSequence((seq) =>
      this.extractOn(seq, type, [{ role: 'system', text: system }, { role: 'user', text: `${renderDocument(chunk.text)}\n\n${question}` }], input, out))));
    const merged = mergeChunks(results.map((r) => r.fields), chunks);
    out.warnings.push(...merged.warnings);
    // Concatenated arrays may exceed the schema's maxItems: keep the first ones, and say so.
    const props = (type.schema.properties ?? {}) as Record<string, { maxItems?: number }>;
    for (const [key, value] of Object.entries(merged.fields)) {
      const max = props[key]?.maxItems;
      if (Array.isArray(value) && max !== undefined && value.length > max) {
        out.warnings.push(`CHUNK_ITEMS_CUT: ${key} had ${value.length} items from all chunks; kept the first ${max} (maxItems)`);
        merged.fields[key] = value.slice(0, max);
      }
    }
    const checked = this.validators.get(type.name)!(merged.fields);
    if (!checked.ok) throw new DocsiftError('MODEL_OUTPUT_INVALID', `the merged chunk results do not validate: ${checked.error}`);
    out.timings.extractMs = Math.round(performance.now() - started) - out.timings.validateMs;
    out.fieldPages = merged.pages;
    out.confidence = mergeConfidence(results, checked.value);
    return checked.value;
  }

  private async extractOn(seq: ModelSequence, type: DocTypePrompt, turns: ChatTurn[], input: PipelineInput, out: PipelineOutput): Promise<{ fields: Record<string, unknown>; confidence: Record<string, number> }> {
    const validate = this.validators.get(type.name)!;
    const { maxTokens, temperature, reasks } = this.queue.model;
    this.ensureFits(seq, turns, maxTokens, 'extraction');
    let conversation = turns;
    let lastError = '';
    for (let attempt = 0; attempt <= reasks; attempt++) {
      const answer = await seq.generate(conversation, { schema: type.schema, maxTokens, temperature, signal: input.signal });
      this.count(out, answer);
      const started = performance.now();
      const parsed = safeJson(answer.text);
      const checked = parsed === undefined
        ? { ok: false as const, error: answer.truncated ? `the JSON was cut off at maxTokens (${maxTokens})` : 'the answer is not valid JSON' }
        : validate(parsed);
      out.timings.validateMs += Math.round(performance.now() - started);
      if (checked.ok) return { fields: checked.value, confidence: roundAll(answer.fieldConfidence) };
      lastError = checked.error;
      if (attempt === reasks) break;
      const next: ChatTurn[] = [...conversation, { role: 'model', text: answer.text }, { role: 'user', text: renderReask(checked.error) }];
      // A re-ask that no longer fits the context cannot help; fail with the error we have.
      if (seq.countTokens(next) + maxTokens > seq.contextSize) break;
      conversation = next;
      out.reasks++;
      out.warnings.push(`REASKED: ${checked.error}`);
    }
    throw new DocsiftError('MODEL_OUTPUT_INVALID', `the model output did not validate against prompts/${type.name}/schema.json after ${out.reasks} re-ask(s): ${lastError}`);
  }

  private count(out: PipelineOutput, answer: Answer): void {
    out.tokens.prompt += answer.promptTokens;
    out.tokens.reused += answer.reusedTokens;
    out.tokens.generated += answer.generatedTokens;
    out.tokens.forced += answer.forcedTokens;
  }

  /** Never cut a document silently: if the prompt and the answer do not fit, fail with the numbers. */
  private ensureFits(seq: ModelSequence, turns: ChatTurn[], maxTokens: number, what: string): void {
    // Tokenizing runs on the event loop; a 50 MB text would block it for seconds. No token of a
    // real vocabulary covers more than a few dozen characters, so this bound never refuses a
    // document that would fit, and refuses the hopeless ones without tokenizing them.
    const chars = turns.reduce((n, t) => n + t.text.length, 0);
    if (chars / MAX_CHARS_PER_TOKEN > seq.contextSize) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the ${what} prompt has ${chars} characters, at least ${Math.ceil(chars / MAX_CHARS_PER_TOKEN)} tokens; the context holds ${seq.contextSize} (model.contextSize)`);
    }
    const needed = seq.countTokens(turns);
    if (needed + maxTokens > seq.contextSize) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the ${what} prompt needs ${needed} tokens plus ${maxTokens} for the answer; the context holds ${seq.contextSize} (model.contextSize)`, {
        details: { promptTokens: needed, maxTokens, contextSize: seq.contextSize },
      });
    }
  }
}

/**
 * Confidence of merged chunk results: a scalar's from the chunk whose value was kept (the first
 * non-null), an array item's from the first chunk that produced that exact item.
 */
function mergeConfidence(results: ReadonlyArray<{ fields: Record<string, unknown>; confidence: Record<string, number> }>, merged: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(merged)) {
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        const id = JSON.stringify(item);
        for (const r of results) {
          const j = Array.isArray(r.fields[key]) ? (r.fields[key] as unknown[]).findIndex((x) => JSON.stringify(x) === id) : -1;
          if (j < 0) continue;
          const prefix = `${key}.${j}`;
          for (const [path, c] of Object.entries(r.confidence)) {
            if (path === prefix || path.startsWith(`${prefix}.`)) out[`${key}.${i}${path.slice(prefix.length)}`] = c;
          }
          break;
        }
      });
      continue;
    }
    const from = results.find((r) => r.fields[key] !== null && r.fields[key] !== undefined) ?? results[0];
    const c = from?.confidence[key];
    if (c !== undefined) out[key] = c;
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

function roundAll(c: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, round(v)]));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
