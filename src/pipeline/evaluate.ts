/**
 * Scoring of extracted fields against labelled documents (`docsift eval`): per-field exact match,
 * precision and recall, and per-document pass/fail. Values are compared after normalising
 * numbers, dates and whitespace, so "1.234,50" equals 1234.5 and "18 april 2014" equals 2014-04-18.
 */

export interface LabelledDocument {
  /** File name of the document; result records are matched by their `filename`. */
  filename: string;
  expected: Record<string, unknown>;
}

export interface FieldScore {
  field: string;
  /** Documents whose label has this field. */
  labelled: number;
  exact: number;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  exactMatch: number;
  precision: number;
  recall: number;
}

export interface DocumentScore {
  filename: string;
  pass: boolean;
  /** Compared fields: expected vs predicted, after normalisation. */
  fields: Array<{ field: string; expected: unknown; predicted: unknown; match: boolean }>;
  error?: string;
}

export interface EvalReport {
  documents: number;
  passed: number;
  fields: FieldScore[];
  perDocument: DocumentScore[];
  /** Mean exact match over fields, weighted by how often each is labelled. */
  overallExactMatch: number;
}

const MONTHS: Record<string, number> = {
  jan: 1, january: 1, janvier: 1, januari: 1, feb: 2, february: 2, fevrier: 2, février: 2, februari: 2, mar: 3, march: 3, mars: 3, maart: 3,
  apr: 4, april: 4, avril: 4, may: 5, mai: 5, mei: 5, jun: 6, june: 6, juin: 6, juni: 6, jul: 7, july: 7, juillet: 7, juli: 7,
  aug: 8, august: 8, août: 8, augustus: 8, sep: 9, sept: 9, september: 9, septembre: 9, oct: 10, october: 10, octobre: 10, oktober: 10,
  nov: 11, november: 11, novembre: 11, dec: 12, december: 12, décembre: 12,
};

const pad = (n: number) => String(n).padStart(2, '0');

/** ISO date from common written forms, or null. Day-first for numeric dates (European invoices). */
export function normaliseDate(value: string): string | null {
  const s = value.trim().toLowerCase();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})/.exec(s);
  if (m) return `${m[1]}-${pad(+m[2]!)}-${pad(+m[3]!)}`;
  m = /^(\d{1,2})[./-](\d{1,2})[./-](\d{2,4})$/.exec(s);
  if (m) {
    const year = m[3]!.length === 2 ? 2000 + +m[3]! : +m[3]!;
    return `${year}-${pad(+m[2]!)}-${pad(+m[1]!)}`;
  }
  m = /^(\d{1,2})(?:st|nd|rd|th)?\s+([a-zéû]+)\.?,?\s+(\d{4})$/.exec(s);
  if (m && MONTHS[m[2]!]) return `${m[3]}-${pad(MONTHS[m[2]!]!)}-${pad(+m[1]!)}`;
  m = /^([a-zéû]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$/.exec(s);
  if (m && MONTHS[m[1]!]) return `${m[3]}-${pad(MONTHS[m[1]!]!)}-${pad(+m[2]!)}`;
  return null;
}

/** A number from "1,234.50", "1.234,50", "€ 12,00", "12.5" or a number; null if none. */
export function normaliseNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string') return null;
  let s = value.replace(/[^\d,.-]/g, '');
  if (!/\d/.test(s)) return null;
  const lastComma = s.lastIndexOf(',');
  const lastDot = s.lastIndexOf('.');
  if (lastComma > lastDot) {
    // The comma is the decimal separator when 1-2 digits follow it (12,50); else a thousands one.
    s = /,\d{1,2}$/.test(s) ? s.replace(/\./g, '').replace(',', '.') : s.replace(/,/g, '');
  } else {
    s = s.replace(/,/g, '');
  }
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function normaliseString(value: string): string {
  return value.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
}

/** Whether a predicted value equals the expected one after normalisation. */
export function valuesMatch(expected: unknown, predicted: unknown): boolean {
  if (expected === null || expected === undefined) return predicted === null || predicted === undefined || predicted === '';
  if (predicted === null || predicted === undefined) return false;
  if (typeof expected === 'number') {
    const p = normaliseNumber(predicted);
    return p !== null && Math.abs(p - expected) < 0.005;
  }
  if (typeof expected === 'string') {
    const ed = normaliseDate(expected);
    if (ed && typeof predicted === 'string') return normaliseDate(predicted) === ed;
    const en = /^[\s\d.,€$£-]+$/.test(expected) ? normaliseNumber(expected) : null;
    if (en !== null) return valuesMatch(en, predicted);
    return typeof predicted === 'string' && normaliseString(predicted) === normaliseString(expected);
  }
  return JSON.stringify(expected) === JSON.stringify(predicted);
}

const isEmpty = (v: unknown) => v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);

/**
 * Scores predictions (by filename; a missing prediction counts as every field missing) over the
 * fields both the label and the schema have.
 */
export function scoreDocuments(labelled: readonly LabelledDocument[], predictions: ReadonlyMap<string, Record<string, unknown> | { error: string }>, schemaFields: readonly string[]): EvalReport {
  const stats = new Map<string, FieldScore>();
  const perDocument: DocumentScore[] = [];
  for (const doc of labelled) {
    const prediction = predictions.get(doc.filename);
    const fields = prediction && !('error' in prediction) ? prediction : {};
    const compared: DocumentScore['fields'] = [];
    for (const field of schemaFields) {
      if (!(field in doc.expected) || Array.isArray(doc.expected[field])) continue; // scalar fields only
      const expected = doc.expected[field];
      const predicted = (fields as Record<string, unknown>)[field];
      const match = valuesMatch(expected, predicted);
      compared.push({ field, expected, predicted: predicted ?? null, match });
      const s = stats.get(field) ?? { field, labelled: 0, exact: 0, truePositives: 0, falsePositives: 0, falseNegatives: 0, exactMatch: 0, precision: 0, recall: 0 };
      s.labelled++;
      if (match) s.exact++;
      if (!isEmpty(predicted)) {
        if (match) s.truePositives++;
        else s.falsePositives++;
      }
      if (!isEmpty(expected) && !match) s.falseNegatives++;
      stats.set(field, s);
    }
    const score: DocumentScore = { filename: doc.filename, pass: compared.length > 0 && compared.every((c) => c.match), fields: compared };
    if (!prediction) score.error = 'no result';
    else if ('error' in prediction) score.error = String(prediction.error);
    perDocument.push(score);
  }
  const fields = [...stats.values()].map((s) => ({
    ...s,
    exactMatch: s.labelled ? s.exact / s.labelled : 0,
    precision: s.truePositives + s.falsePositives ? s.truePositives / (s.truePositives + s.falsePositives) : 0,
    recall: s.truePositives + s.falseNegatives ? s.truePositives / (s.truePositives + s.falseNegatives) : 0,
  }));
  const labelledTotal = fields.reduce((n, f) => n + f.labelled, 0);
  return {
    documents: labelled.length,
    passed: perDocument.filter((d) => d.pass).length,
    fields,
    perDocument,
    overallExactMatch: labelledTotal ? fields.reduce((n, f) => n + f.exact, 0) / labelledTotal : 0,
  };
}
