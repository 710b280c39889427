import type { Config, DocTypePrompt, QueueConfig } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { makeValidator, type ModelChat, type ModelEngine, type Validator } from '../model/index.js';
import type { ExtractedText } from '../text/index.js';
import { chunkPages, mergeChunks } from './chunks.js';
import { groundFields, type Grounding } from './grounding.js';
import { normaliseFields } from './normalise.js';
import { checkRules, type CheckResult } from './rules.js';
import { renderClassifyPrompt, renderExtractPrompt, renderReask, documentText } from './prompts.js';

export interface PipelineOutput {
  classification: { label: string; method: 'model' | 'fixed' };
  /** The type whose schema the fields follow; null when the label is "other". */
  documentType: string | null;
  fields: Record<string, unknown> | null;
  tokens: { prompt: number; generated: number };
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
/** Tokens a chat template adds around the system prompt and the user message (generous). */
const TEMPLATE_MARGIN = 128;

const CLASSIFY_SCHEMA_CACHE = new WeakMap<readonly string[], Record<string, unknown>>();

/**
 * classify -> extract -> validate, for one document. Pure orchestration: it knows prompts,
 * the model engine and schemas, nothing of BullMQ or HTTP, so the worker, tests and the bench
 * run the same code.
 */
export class Pipeline {
  private readonly validators = new Map<string, Validator>();

  constructor(private readonly config: Config, private readonly queue: QueueConfig, private readonly engine: ModelEngine) {
    for (const [name, type] of config.prompts.types) this.validators.set(name, makeValidator(type.schema));
  }

  async run(input: PipelineInput): Promise<PipelineOutput> {
    const out: PipelineOutput = {
      classification: { label: '', method: 'model' },
      documentType: null,
      fields: null,
      tokens: { prompt: 0, generated: 0 },
      timings: { classifyMs: 0, extractMs: 0, validateMs: 0 },
      reasks: 0,
      chunks: 1,
      fieldPages: null,
      checks: [],
      grounding: null,
      warnings: [...input.text.warnings],
    };
    const pipeline = this.queue.pipeline;
    if (input.documentType) {
      out.classification = { label: input.documentType, method: 'fixed' };
    } else if (pipeline.mode === 'extract') {
      out.classification = { label: pipeline.documentType, method: 'fixed' };
    } else {
      input.onStage?.('classify');
      const started = performance.now();
      out.classification = { label: await this.classify(input, out), method: 'model' };
      out.timings.classifyMs = Math.round(performance.now() - started);
    }
    const type = this.config.prompts.types.get(out.classification.label);
    if (!type) return out; // "other": nothing to extract
    out.documentType = type.name;
    input.onStage?.('extract', { documentType: type.name });
    const started = performance.now();
    const fields = await this.extract(type, input, out);
    out.timings.extractMs = Math.round(performance.now() - started) - out.timings.validateMs;
    out.warnings.push(...normaliseFields(type.schema as Parameters<typeof normaliseFields>[0], fields));
    out.checks = checkRules(type.rules, fields);
    out.grounding = groundFields(fields, input.text.pages);
    out.fields = fields;
    return out;
  }

  private async classify(input: PipelineInput, out: PipelineOutput): Promise<string> {
    const labels = this.config.prompts.classify.labels;
    let schema = CLASSIFY_SCHEMA_CACHE.get(labels);
    if (!schema) {
      schema = { type: 'string', enum: [...labels] };
      CLASSIFY_SCHEMA_CACHE.set(labels, schema);
    }
    const { system, user, truncated } = renderClassifyPrompt(this.config.prompts, input.text, this.queue.model.classifyChars);
    if (truncated) out.warnings.push(`CLASSIFIED_ON_OPENING: the classifier read the first ${this.queue.model.classifyChars} characters`);
    return this.engine.chat(system, async (chat) => {
      this.ensureFits(chat, user, 16, 'classification');
      const answer = await chat.ask(user, { schema, maxTokens: 16, temperature: 0, ...signalOf(input) });
      out.tokens.prompt += answer.promptTokens;
      out.tokens.generated += answer.generatedTokens;
      const label = safeJson(answer.text);
      if (typeof label !== 'string' || !labels.includes(label)) {
        throw new DocsiftError('MODEL_OUTPUT_INVALID', `classification answer ${JSON.stringify(answer.text)} is not one of ${labels.join(', ')}`);
      }
      return label;
    });
  }

  /**
   * One extraction when the document fits the context; otherwise (model.chunking) one per chunk,
   * in parallel sequences, merged in code. Never cuts the document silently.
   */
  private async extract(type: DocTypePrompt, input: PipelineInput, out: PipelineOutput): Promise<Record<string, unknown>> {
    const full = documentText(input.text);
    const { maxTokens } = this.queue.model;
    const { enabled, maxChunks, overlapChars } = this.queue.model.chunking;
    const contextSize = this.engine.info.contextSize;
    const allPages = input.text.pages.map((_, i) => i + 1);
    const { system, user } = renderExtractPrompt(type, full);
    const fixed = this.engine.countTokens(system + renderExtractPrompt(type, '').user) + TEMPLATE_MARGIN;
    const hopeless = full.length / MAX_CHARS_PER_TOKEN > (contextSize - fixed - maxTokens) * (enabled ? maxChunks : 1);
    if (!enabled || hopeless || fixed + this.engine.countTokens(full) + maxTokens <= contextSize) {
      const fields = await this.extractOne(type, system, user, input, out);
      out.fieldPages = Object.fromEntries(Object.keys(fields).map((k) => [k, fields[k] === null ? [] : allPages]));
      return fields;
    }
    const budget = contextSize - fixed - maxTokens;
    const chunks = chunkPages(input.text.pages, budget, (s) => this.engine.countTokens(s), overlapChars);
    if (chunks.length > maxChunks) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the document needs ${chunks.length} chunks of ${budget} tokens; the queue allows ${maxChunks} (model.chunking.maxChunks)`);
    }
    out.chunks = chunks.length;
    out.warnings.push(`CHUNKED: the document was longer than the context and was read in ${chunks.length} chunks`);
    const results = await Promise.all(chunks.map((chunk) => this.extractOne(type, system, renderExtractPrompt(type, chunk.text).user, input, out)));
    const merged = mergeChunks(results, chunks);
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
    out.fieldPages = merged.pages;
    return checked.value;
  }

  private async extractOne(type: DocTypePrompt, system: string, user: string, input: PipelineInput, out: PipelineOutput): Promise<Record<string, unknown>> {
    const validate = this.validators.get(type.name)!;
    const { maxTokens, temperature, reasks } = this.queue.model;
    return this.engine.chat(system, async (chat) => {
      this.ensureFits(chat, user, maxTokens, 'extraction');
      let message = user;
      let lastError = '';
      for (let attempt = 0; attempt <= reasks; attempt++) {
        const answer = await chat.ask(message, { schema: type.schema, maxTokens, temperature, ...signalOf(input) });
        out.tokens.prompt += answer.promptTokens;
        out.tokens.generated += answer.generatedTokens;
        const started = performance.now();
        const parsed = safeJson(answer.text);
        const checked = parsed === undefined
          ? { ok: false as const, error: answer.truncated ? `the JSON was cut off at maxTokens (${maxTokens})` : 'the answer is not valid JSON' }
          : validate(parsed);
        out.timings.validateMs += Math.round(performance.now() - started);
        if (checked.ok) return checked.value;
        lastError = checked.error;
        if (attempt === reasks) break;
        message = renderReask(checked.error);
        // A re-ask that no longer fits the context cannot help; fail with the error we have.
        if (chat.tokensFor(message) + maxTokens > chat.contextSize) break;
        out.reasks++;
        out.warnings.push(`REASKED: ${checked.error}`);
      }
      throw new DocsiftError('MODEL_OUTPUT_INVALID', `the model output did not validate against prompts/${type.name}/schema.json after ${out.reasks} re-ask(s): ${lastError}`);
    });
  }

  /** Never cut a document silently: if the prompt and the answer do not fit, fail with the numbers. */
  private ensureFits(chat: ModelChat, user: string, maxTokens: number, what: string): void {
    // Tokenizing runs on the event loop; a 50 MB text would block it for seconds. No token of a
    // real vocabulary covers more than a few dozen characters, so this bound never refuses a
    // document that would fit, and refuses the hopeless ones without tokenizing them.
    if (user.length / MAX_CHARS_PER_TOKEN > chat.contextSize) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the ${what} prompt has ${user.length} characters, at least ${Math.ceil(user.length / MAX_CHARS_PER_TOKEN)} tokens; the context holds ${chat.contextSize} (model.contextSize)`);
    }
    const needed = chat.tokensFor(user);
    if (needed + maxTokens > chat.contextSize) {
      throw new DocsiftError('DOCUMENT_TOO_LONG', `the ${what} prompt needs ${needed} tokens plus ${maxTokens} for the answer; the context holds ${chat.contextSize} (model.contextSize)`, {
        details: { promptTokens: needed, maxTokens, contextSize: chat.contextSize },
      });
    }
  }
}

function signalOf(input: PipelineInput): { signal?: AbortSignal } {
  return input.signal ? { signal: input.signal } : {};
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
