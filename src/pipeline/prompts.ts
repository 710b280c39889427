import type { DocTypePrompt, Prompts } from '../config/index.js';
import type { ExtractedText } from '../text/index.js';

/**
 * Prompt rendering: pure functions of the prompt files and the document text, snapshot-tested.
 * The fixed part (instructions, field list) is the system prompt and comes first, so a sequence
 * that already evaluated it for the previous document reuses it; only the document is new.
 */

/** Pages joined with markers, so the model (and later the per-field page provenance) sees page breaks. */
export function documentText(text: ExtractedText): string {
  if (text.pages.length === 1) return text.pages[0]!.trim();
  return text.pages.map((p, i) => `--- page ${i + 1} ---\n${p.trim()}`).join('\n\n');
}

function fieldList(schema: Readonly<Record<string, unknown>>, indent = ''): string {
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const lines: string[] = [];
  for (const [name, sub] of Object.entries(props)) {
    lines.push(`${indent}- ${name}${sub.description ? `: ${String(sub.description)}` : ''}`);
    const items = sub.items as Record<string, unknown> | undefined;
    if (sub.type === 'array' && items?.type === 'object') lines.push(fieldList(items, `${indent}  `));
  }
  return lines.join('\n');
}

/**
 * The system prompt: everything fixed for the queue, first, so that each sequence evaluates it
 * once and reuses it for every later document. A classifying queue's holds the labels and the
 * instructions and fields of every type it can extract, so that after the label only a one-line
 * question is new work, and the document is read once for both questions.
 */
export function renderSystemPrompt(types: readonly DocTypePrompt[], classifyWith?: Prompts): string {
  const parts: string[] = [];
  const classify = classifyWith !== undefined;
  if (classifyWith) {
    const prompts = classifyWith;
    const labels = prompts.classify.labels.map((label) => {
      const type = prompts.types.get(label);
      return `- ${label}: ${type ? type.description : 'none of the above'}`;
    });
    parts.push(`${prompts.classify.instructions}\n\nLabels:\n${labels.join('\n')}`);
  }
  for (const type of types) {
    parts.push(`${classify ? `## ${type.name}\n\n` : ''}${type.instructions}\n\nFields of a ${type.name.replace(/_/g, ' ')}:\n${fieldList(type.schema)}`);
  }
  return parts.join('\n\n');
}

export function renderDocument(text: string): string {
  return `<document>\n${text}\n</document>`;
}

/** The extraction conversation of a queue that does not classify (and of export-training's examples). */
export function renderExtractPrompt(type: DocTypePrompt, text: string): { system: string; user: string } {
  return { system: renderSystemPrompt([type]), user: `${renderDocument(text)}\n\n${extractQuestion(type)}` };
}

export const CLASSIFY_QUESTION = 'Which label fits this document?';

export function extractQuestion(type: DocTypePrompt): string {
  return `Extract the fields of this ${type.name.replace(/_/g, ' ')} from the document.`;
}

export function renderReask(error: string): string {
  return `Your answer did not match the schema: ${error}. Answer again with the complete JSON object.`;
}
