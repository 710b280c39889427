import { dateCandidates, normaliseDate, normaliseNumber } from './normalise.js';

/** Where a field's value was found in the document text. */
export interface Grounding {
  page: number;
  /** Character offsets within that page's text. */
  start: number;
  end: number;
  /** The text as written in the document. */
  text: string;
}

/**
 * For each scalar field, whether its value appears in the document text, and where: a value the
 * model wrote but the document does not contain is a likely hallucination. Numbers are found in
 * any common written form (1234.5 as "1,234.50" or "1.234,50"), dates likewise, strings ignoring
 * case and runs of whitespace. Arrays are grounded item by item (`lines.0.amount`).
 */
export function groundFields(fields: Record<string, unknown>, pages: readonly string[]): Record<string, Grounding | null> {
  const out: Record<string, Grounding | null> = {};
  const visit = (value: unknown, key: string) => {
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (item && typeof item === 'object') for (const [k, v] of Object.entries(item)) visit(v, `${key}.${i}.${k}`);
        else visit(item, `${key}.${i}`);
      });
      return;
    }
    if (value === null || value === undefined || value === '' || typeof value === 'boolean' || typeof value === 'object') return;
    out[key] = find(value as string | number, pages);
  };
  for (const [k, v] of Object.entries(fields)) visit(v, k);
  return out;
}

const NUMBER = /-?\d[\d.,' ]*\d|-?\d/g;
const DATE = /\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b|\b\d{1,2}(?:st|nd|rd|th)?\s+[A-Za-zéû]+\.?,?\s+\d{4}\b|\b[A-Za-zéû]+\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}\b/g;

function find(value: string | number, pages: readonly string[]): Grounding | null {
  const asNumber = typeof value === 'number' ? value : null;
  const asDate = typeof value === 'string' ? normaliseDate(value) : null;
  for (const [i, page] of pages.entries()) {
    if (asNumber !== null) {
      for (const m of page.matchAll(NUMBER)) {
        const n = normaliseNumber(m[0].replace(/['\s]/g, ''));
        if (n !== null && Math.abs(n - asNumber) < 0.005) return { page: i + 1, start: m.index!, end: m.index! + m[0].length, text: m[0] };
      }
      continue;
    }
    if (asDate !== null) {
      for (const m of page.matchAll(DATE)) {
        if (normaliseDate(m[0]) === asDate || dateCandidates(m[0]).includes(asDate)) return { page: i + 1, start: m.index!, end: m.index! + m[0].length, text: m[0] };
      }
    }
    const hit = findText(page, String(value));
    if (hit) return { page: i + 1, ...hit };
  }
  return null;
}

/** Case-insensitive search where any run of whitespace in the value matches any run in the page. */
function findText(page: string, value: string): { start: number; end: number; text: string } | null {
  const words = value.trim().split(/\s+/).filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (words.length === 0) return null;
  const m = new RegExp(words.join('\\s+'), 'i').exec(page);
  return m ? { start: m.index, end: m.index + m[0].length, text: m[0] } : null;
}
