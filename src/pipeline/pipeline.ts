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
  /** confidence: the probability of the label's least likely token; null when the label was fixed. */
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
  /** A document that does not fit the context whole fails DOCUMENT_TOO_LONG instead of being read in chunks (it goes to a larger tier). */
  refuseChunks?: boolean;
  /** Extract only these top-level fields of the type (a tier re-extracting what the tier below doubted). */
  onlyFields?: readonly string[];
  /** Called when a stage starts, for job progress and logs. */
  onStage?: (stage: 'classify' | 'extract', detail?: Record<string, unknown>) => void;
}

/** What model calls cost and said besides their answer; stages return it and the caller adds it up. */
interface Usage {
  tokens: PipelineOutput['tokens'];
  validateMs: number;
  reasks: number;
  warnings: string[];
}

const NO_USAGE: Usage = { tokens: { prompt: 0, reused: 0, generated: 0, forced: 0 }, validateMs: 0, reasks: 0, warnings: [] };

function addUsage(a: Usage, b: Usage): Usage {
  return {
    tokens: { prompt: a.tokens.prompt + b.tokens.prompt, reused: a.tokens.reused + b.tokens.reused, generated: a.tokens.generated + b.tokens.generated, forced: a.tokens.forced + b.tokens.forced },
    validateMs: a.validateMs + b.validateMs,
    reasks: a.reasks + b.reasks,
    warnings: [...a.warnings, ...b.warnings],
  };
}

function tokensOf(answer: Answer): Usage['tokens'] {
  return { prompt: answer.promptTokens, reused: answer.reusedTokens, generated: answer.generatedTokens, forced: answer.forcedTokens };
}

interface Classified {
  classification: PipelineOutput['classification'];
  /** The label as the model wrote it, to repeat verbatim in the conversation. */
  answer: string;
  usage: Usage;
  ms: number;
}

interface Extracted {
  fields: Record<string, unknown>;
  confidence: Record<string, number>;
  usage: Usage;
}

/** What reading a document (whole or in chunks) returns; extraction is null for "other". */
interface Reading {
  classification: PipelineOutput['classification'];
  classifyMs: number;
  extraction: { documentType: string; fields: Record<string, unknown>; confidence: Record<string, number>; fieldPages: Record<string, number[]> } | null;
  extractMs: number;
  chunks: number;
  usage: Usage;
}

function otherReading(classified: Classified): Reading {
  return { classification: classified.classification, classifyMs: classified.ms, extraction: null, extractMs: 0, chunks: 1, usage: classified.usage };
}

const MAX_CHARS_PER_TOKEN = 32;
/** Tokens a chat template adds around the turns (generous). */
const TEMPLATE_MARGIN = 128;

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
  /** Types narrowed to some of their fields (onlyFields), by type and fields, with their validators. */
  private readonly narrowed = new Map<string, { type: DocTypePrompt; validate: Validator }>();
  private readonly systems = new Map<string, { system: string; fixedTokens: number }>();
  private classifyQuestion: { schema: Record<string, unknown>; maxTokens: number } | undefined;

  constructor(private readonly config: Config, private readonly queue: QueueConfig, private readonly engine: Engine) {
    for (const [name, type] of config.prompts.types) this.validators.set(name, makeValidator(type.schema));
  }

  async run(input: PipelineInput): Promise<PipelineOutput> {
    const pipeline = this.queue.pipeline;
    const fixedType = input.documentType ?? (pipeline.mode === 'extract' ? pipeline.documentType : undefined);
    const { system, fixedTokens } = this.systemFor(fixedType);
    const full = documentText(input.text);
    const { maxTokens } = this.queue.model;
    const { enabled, maxChunks } = this.queue.model.chunking;
    const contextSize = this.engine.info.contextSize;
    const hopeless = full.length / MAX_CHARS_PER_TOKEN > (contextSize - fixedTokens - maxTokens) * (enabled ? maxChunks : 1);
    const whole = !enabled || hopeless || fixedTokens + this.engine.countTokens(full) + maxTokens <= contextSize;
    if (!whole && input.refuseChunks) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the document does not fit this model's context of ${contextSize} tokens whole, and the queue escalates such documents instead of reading them in chunks (escalate.when.tooLong)`);
    }
    const reading = whole
      ? await this.engine.withSequence((seq) => this.readWhole(seq, system, full, fixedType, input))
      : await this.readInChunks(system, fixedTokens, fixedType, input);
    const { usage, extraction } = reading;
    const warnings = [...input.text.warnings, ...usage.warnings];
    let checked: Pick<PipelineOutput, 'checks' | 'grounding'> = { checks: [], grounding: null };
    if (extraction) {
      const type = this.config.prompts.types.get(extraction.documentType)!;
      warnings.push(...normaliseFields(type.schema as Parameters<typeof normaliseFields>[0], extraction.fields));
      checked = { checks: checkRules(type.rules, extraction.fields), grounding: groundFields(extraction.fields, input.text.pages) };
    }
    return {
      classification: reading.classification,
      documentType: extraction?.documentType ?? null,
      fields: extraction?.fields ?? null,
      confidence: extraction?.confidence ?? null,
      fieldPages: extraction?.fieldPages ?? null,
      chunks: reading.chunks,
      tokens: usage.tokens,
      timings: { classifyMs: reading.classifyMs, extractMs: reading.extractMs, validateMs: usage.validateMs },
      reasks: usage.reasks,
      ...checked,
      warnings,
    };
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

  /** The type to extract: the prompt's, or narrowed to some of its fields (its schema's properties and required list cut to them). */
  private extractionType(label: string, only: readonly string[] | undefined): DocTypePrompt {
    const type = this.typeOf(label);
    if (!only) return type;
    const key = `${type.name}|${[...only].sort().join(',')}`;
    let entry = this.narrowed.get(key);
    if (!entry) {
      const schema = type.schema as { properties?: Record<string, unknown>; required?: string[] };
      const narrow = {
        ...type.schema,
        properties: Object.fromEntries(Object.entries(schema.properties ?? {}).filter(([k]) => only.includes(k))),
        required: (schema.required ?? []).filter((k) => only.includes(k)),
      };
      entry = { type: { ...type, schema: narrow }, validate: makeValidator(narrow) };
      this.narrowed.set(key, entry);
    }
    return entry.type;
  }

  private validatorFor(type: DocTypePrompt): Validator {
    for (const entry of this.narrowed.values()) if (entry.type === type) return entry.validate;
    return this.validators.get(type.name)!;
  }

  /** One conversation: [classify], extract; no extraction for "other". */
  private async readWhole(seq: ModelSequence, system: string, full: string, fixedType: string | undefined, input: PipelineInput): Promise<Reading> {
    const document = renderDocument(full);
    const turns: ChatTurn[] = [{ role: 'system', text: system }];
    let classified: Classified;
    if (fixedType) {
      classified = { classification: { label: fixedType, method: 'fixed', confidence: null }, answer: '', usage: NO_USAGE, ms: 0 };
      turns.push({ role: 'user', text: `${document}\n\n${extractQuestion(this.typeOf(fixedType))}` });
    } else {
      input.onStage?.('classify');
      turns.push({ role: 'user', text: `${document}\n\n${CLASSIFY_QUESTION}` });
      classified = await this.classify(seq, turns, input);
      if (!this.config.prompts.types.has(classified.classification.label)) return otherReading(classified); // "other"
      turns.push({ role: 'model', text: classified.answer }, { role: 'user', text: extractQuestion(this.typeOf(classified.classification.label)) });
    }
    const type = this.extractionType(classified.classification.label, input.onlyFields);
    input.onStage?.('extract', { documentType: type.name });
    const started = performance.now();
    const extracted = await this.extractOn(seq, type, turns, input);
    const allPages = input.text.pages.map((_, i) => i + 1);
    const { fields } = extracted;
    return {
      classification: classified.classification,
      classifyMs: classified.ms,
      extraction: {
        documentType: type.name, fields, confidence: extracted.confidence,
        fieldPages: Object.fromEntries(Object.keys(fields).map((k) => [k, fields[k] === null ? [] : allPages])),
      },
      extractMs: Math.round(performance.now() - started) - extracted.usage.validateMs,
      chunks: 1,
      usage: addUsage(classified.usage, extracted.usage),
    };
  }

  /** The label, and its JSON text as the model wrote it (the next turn repeats it verbatim, so it is reused). */
  private async classify(seq: ModelSequence, turns: ChatTurn[], input: PipelineInput): Promise<Classified> {
    const started = performance.now();
    const labels = this.config.prompts.classify.labels;
    // The answer is one label with its quotes; forced tokens count too, so budget the longest.
    this.classifyQuestion ??= {
      schema: { type: 'string', enum: [...labels] },
      maxTokens: Math.max(...labels.map((l) => this.engine.countTokens(JSON.stringify(l)))) + 2,
    };
    const { schema, maxTokens } = this.classifyQuestion;
    this.ensureFits(seq, turns, maxTokens, 'classification');
    const answer = await seq.generate(turns, { schema, maxTokens, temperature: 0, decoder: this.queue.model.decoder, signal: input.signal });
    const label = safeJson(answer.text);
    if (typeof label !== 'string' || !labels.includes(label)) {
      throw new DocsiftError('MODEL_OUTPUT_INVALID', `classification answer ${JSON.stringify(answer.text)} is not one of ${labels.join(', ')}`);
    }
    return {
      classification: { label, method: 'model', confidence: round(answer.confidence) },
      answer: answer.text,
      usage: { ...NO_USAGE, tokens: tokensOf(answer) },
      ms: Math.round(performance.now() - started),
    };
  }

  /**
   * Classified on the opening pages (model.classifyChars), then extracted chunk by chunk in
   * parallel sequences, merged in code. Never cuts the document silently.
   */
  private async readInChunks(system: string, fixedTokens: number, fixedType: string | undefined, input: PipelineInput): Promise<Reading> {
    const { maxTokens, classifyChars } = this.queue.model;
    const { maxChunks, overlapChars } = this.queue.model.chunking;
    let classified: Classified = { classification: { label: fixedType ?? '', method: 'fixed', confidence: null }, answer: '', usage: NO_USAGE, ms: 0 };
    if (!fixedType) {
      input.onStage?.('classify');
      const full = documentText(input.text);
      const opening = full.slice(0, classifyChars);
      classified = await this.engine.withSequence((seq) => this.classify(seq, [{ role: 'system', text: system }, { role: 'user', text: `${renderDocument(opening)}\n\n${CLASSIFY_QUESTION}` }], input));
      if (opening.length < full.length) classified.usage = { ...classified.usage, warnings: [`CLASSIFIED_ON_OPENING: the classifier read the first ${classifyChars} characters`] };
      if (!this.config.prompts.types.has(classified.classification.label)) return otherReading(classified);
    }
    const type = this.extractionType(classified.classification.label, input.onlyFields);
    input.onStage?.('extract', { documentType: type.name });
    const started = performance.now();
    const budget = this.engine.info.contextSize - fixedTokens - maxTokens;
    const chunks = chunkPages(input.text.pages, budget, (s) => this.engine.countTokens(s), overlapChars);
    if (chunks.length > maxChunks) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the document needs ${chunks.length} chunks of ${budget} tokens; the queue allows ${maxChunks} (model.chunking.maxChunks)`);
    }
    const chunked = `CHUNKED: the document was longer than the context and was read in ${chunks.length} chunks`;
    const question = extractQuestion(type);
    const results = await Promise.all(chunks.map((chunk) => this.engine.withSequence((seq) =>
      this.extractOn(seq, type, [{ role: 'system', text: system }, { role: 'user', text: `${renderDocument(chunk.text)}\n\n${question}` }], input))));
    const merged = mergeChunks(results.map((r) => r.fields), chunks);
    const warnings = [...merged.warnings];
    // Concatenated arrays may exceed the schema's maxItems: keep the first ones, and say so.
    const props = (type.schema.properties ?? {}) as Record<string, { maxItems?: number }>;
    for (const [key, value] of Object.entries(merged.fields)) {
      const max = props[key]?.maxItems;
      if (Array.isArray(value) && max !== undefined && value.length > max) {
        warnings.push(`CHUNK_ITEMS_CUT: ${key} had ${value.length} items from all chunks; kept the first ${max} (maxItems)`);
        merged.fields[key] = value.slice(0, max);
      }
    }
    const checked = this.validatorFor(type)(merged.fields);
    if (!checked.ok) throw new DocsiftError('MODEL_OUTPUT_INVALID', `the merged chunk results do not validate: ${checked.error}`);
    const usage = [classified.usage, { ...NO_USAGE, warnings: [chunked] }, ...results.map((r) => r.usage), { ...NO_USAGE, warnings }].reduce(addUsage);
    return {
      classification: classified.classification,
      classifyMs: classified.ms,
      extraction: { documentType: type.name, fields: checked.value, confidence: mergeConfidence(results, checked.value), fieldPages: merged.pages },
      extractMs: Math.round(performance.now() - started) - usage.validateMs,
      chunks: chunks.length,
      usage,
    };
  }

  /** The fields of one conversation, validated against the type's schema, re-asking with the error a bounded number of times. */
  private async extractOn(seq: ModelSequence, type: DocTypePrompt, turns: ChatTurn[], input: PipelineInput): Promise<Extracted> {
    const validate = this.validatorFor(type);
    const { maxTokens, temperature, reasks, decoder } = this.queue.model;
    this.ensureFits(seq, turns, maxTokens, 'extraction');
    let usage = NO_USAGE;
    let conversation = turns;
    let lastError = '';
    for (let attempt = 0; attempt <= reasks; attempt++) {
      const answer = await seq.generate(conversation, { schema: type.schema, maxTokens, temperature, decoder, signal: input.signal });
      const started = performance.now();
      const parsed = safeJson(answer.text);
      const checked = parsed === undefined
        ? { ok: false as const, error: answer.truncated ? `the JSON was cut off at maxTokens (${maxTokens})` : 'the answer is not valid JSON' }
        : validate(parsed);
      usage = addUsage(usage, { ...NO_USAGE, tokens: tokensOf(answer), validateMs: Math.round(performance.now() - started) });
      if (checked.ok) return { fields: checked.value, confidence: roundAll(answer.fieldConfidence), usage };
      lastError = checked.error;
      if (attempt === reasks) break;
      const next: ChatTurn[] = [...conversation, { role: 'model', text: answer.text }, { role: 'user', text: renderReask(checked.error) }];
      // A re-ask that no longer fits the context cannot help; fail with the error we have.
      if (seq.countTokens(next) + maxTokens > seq.contextSize) break;
      conversation = next;
      usage = addUsage(usage, { ...NO_USAGE, reasks: 1, warnings: [`REASKED: ${checked.error}`] });
    }
    // The tokens spent go with the error: a larger tier that takes the document over accounts for them.
    throw new DocsiftError('MODEL_OUTPUT_INVALID', `the model output did not validate against prompts/${type.name}/schema.json after ${usage.reasks} re-ask(s): ${lastError}`, { details: { tokens: usage.tokens } });
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
function mergeConfidence(results: ReadonlyArray<Pick<Extracted, 'fields' | 'confidence'>>, merged: Record<string, unknown>): Record<string, number> {
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
