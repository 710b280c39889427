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

export function renderExtractPrompt(type: DocTypePrompt, text: string): { system: string; user: string } {
  return {
    system: `${type.instructions}\n\nFields of a ${type.name.replace(/_/g, ' ')}:\n${fieldList(type.schema)}`,
    user: `Extract the fields from this document.\n\n<document>\n${text}\n</document>`,
  };
}

export function renderClassifyPrompt(prompts: Prompts, text: ExtractedText, maxChars: number): { system: string; user: string; truncated: boolean } {
  const labels = prompts.classify.labels.map((label) => {
    const type = prompts.types.get(label);
    return `- ${label}: ${type ? type.description : 'none of the above'}`;
  });
  const full = documentText(text);
  const opening = full.slice(0, maxChars);
  return {
    system: `${prompts.classify.instructions}\n\nLabels:\n${labels.join('\n')}`,
    user: `Which label fits this document?\n\n<document>\n${opening}\n</document>`,
    truncated: opening.length < full.length,
  };
}

export function renderReask(error: string): string {
  return `Your answer did not match the schema: ${error}. Answer again with the complete JSON object.`;
}
