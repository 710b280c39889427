/**
 * Scoring of extracted fields against labelled documents (`docsift eval`): per-field exact match,
 * precision and recall, and per-document pass/fail. Values are compared after normalising
 * numbers, dates and whitespace, so "1.234,50" equals 1234.5 and "18 april 2014" equals 2014-04-18.
 */
import { normaliseDate, normaliseNumber } from './normalise.js';

export { normaliseDate, normaliseNumber };

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
  /** Compared fields by the model's confidence in them, against how often they matched. */
  calibration: CalibrationBucket[];
}

export interface CalibrationBucket {
  /** Confidence in [from, to) (the last bucket includes 1). */
  from: number;
  to: number;
  fields: number;
  exact: number;
  exactMatch: number;
}

/**
 * Bucket edges: most values of a working model sit near 1, so the top is split finely; the
 * lower buckets show where review.minConfidence should go.
 */
const CALIBRATION_EDGES = [0, 0.3, 0.5, 0.7, 0.9, 0.99, 1];

/** How often a field was right at each level of the model's confidence in it. */
export function calibrate(perDocument: readonly DocumentScore[], confidences: ReadonlyMap<string, Record<string, number>>): CalibrationBucket[] {
  const buckets = CALIBRATION_EDGES.slice(0, -1).map((from, i) => ({ from, to: CALIBRATION_EDGES[i + 1]!, fields: 0, exact: 0, exactMatch: 0 }));
  for (const doc of perDocument) {
    const confidence = confidences.get(doc.filename);
    if (!confidence) continue;
    for (const f of doc.fields) {
      const c = confidence[f.field];
      if (c === undefined) continue;
      const b = buckets.find((x) => c < x.to) ?? buckets.at(-1)!;
      b.fields++;
      if (f.match) b.exact++;
    }
  }
  for (const b of buckets) b.exactMatch = b.fields ? b.exact / b.fields : 0;
  return buckets;
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
export function scoreDocuments(
  labelled: readonly LabelledDocument[],
  predictions: ReadonlyMap<string, Record<string, unknown> | { error: string }>,
  schemaFields: readonly string[],
  confidences: ReadonlyMap<string, Record<string, number>> = new Map(),
): EvalReport {
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
    calibration: calibrate(perDocument, confidences),
  };
}

/** One step of a document's path through model tiers, as a result record gives it. */
export interface TierPassage {
  queue: string;
  tokens: { prompt: number; reused: number; generated: number; forced: number };
  modelMs: number;
}

export interface TierScore {
  queue: string;
  /** Documents this tier read (all that reached it). */
  read: number;
  /** Documents whose final fields are this tier's. */
  final: number;
  /** Exact match over the labelled fields of the documents final here. */
  exactMatch: number;
  /** Per document this tier read: tokens (prompt, reused, generated, forced) and seconds in its model. */
  tokensPerDocument: number;
  modelSecondsPerDocument: number;
}

/**
 * Per model tier: what it read, how accurate the documents it finished are, and what a document
 * cost it; and the share of documents handed on beyond the first tier.
 */
export function scoreTiers(perDocument: readonly DocumentScore[], paths: ReadonlyMap<string, readonly TierPassage[]>): { escalatedShare: number; tiers: TierScore[] } {
  const tiers = new Map<string, { read: number; final: number; exact: number; compared: number; tokens: number; modelMs: number; order: number }>();
  let escalated = 0;
  let documents = 0;
  for (const doc of perDocument) {
    const path = paths.get(doc.filename);
    if (!path?.length) continue;
    documents++;
    if (path.length > 1) escalated++;
    path.forEach((step, i) => {
      const t = tiers.get(step.queue) ?? { read: 0, final: 0, exact: 0, compared: 0, tokens: 0, modelMs: 0, order: i };
      t.read++;
      t.tokens += step.tokens.prompt + step.tokens.reused + step.tokens.generated + step.tokens.forced;
      t.modelMs += step.modelMs;
      if (i === path.length - 1) {
        t.final++;
        t.compared += doc.fields.length;
        t.exact += doc.fields.filter((f) => f.match).length;
      }
      tiers.set(step.queue, t);
    });
  }
  return {
    escalatedShare: documents ? escalated / documents : 0,
    tiers: [...tiers.entries()].sort((a, b) => a[1].order - b[1].order).map(([queue, t]) => ({
      queue, read: t.read, final: t.final, exactMatch: t.compared ? t.exact / t.compared : 0,
      tokensPerDocument: Math.round(t.tokens / t.read), modelSecondsPerDocument: Math.round(t.modelMs / t.read / 10) / 100,
    })),
  };
}
