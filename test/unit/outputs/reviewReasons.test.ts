import { describe, expect, it } from 'vitest';
import { getQueue, loadConfig } from '../../../src/config/index.js';
import { reviewReasons } from '../../../src/outputs/index.js';
import type { ResultRecord } from '../../../src/pipeline/index.js';
import { REPO } from '../../helpers/testEnv.js';

const config = loadConfig({ DOCSIFT_HOME: REPO });
const base = getQueue(config, 'documents');

function record(confidence: Record<string, number>, label: number | null, ocr: { pages: number[]; meanConfidence: number } | null = null): ResultRecord {
  return {
    documentId: 'd1', fields: { invoice_number: 'A-1', amount: 10 }, confidence, checks: [], grounding: null, text: { format: 'pdf', pages: 2, chars: 900, ocr },
    classification: { label: 'invoice', method: label === null ? 'fixed' : 'model', confidence: label },
  } as unknown as ResultRecord;
}

describe('review routing by model confidence', () => {
  const queue = { ...base, review: { ...base.review, enabled: true, minConfidence: 0.6 } };

  it('holds a result whose field or label confidence is below minConfidence, naming them', () => {
    const reasons = reviewReasons(queue, record({ invoice_number: 0.97, amount: 0.31, 'lines.0.amount': 0.59 }, 0.99));
    expect(reasons).toEqual(['confidence below 0.6: amount 0.31, lines.0.amount 0.59']);
    expect(reviewReasons(queue, record({ invoice_number: 0.97 }, 0.4))).toEqual(['confidence below 0.6: label 0.4']);
  });

  it('holds a scan whose OCR read it with low confidence (ocr.minConfidence)', () => {
    const queue = { ...base, review: { ...base.review, enabled: true, minConfidence: 0 } };
    expect(reviewReasons(queue, record({}, null, { pages: [2], meanConfidence: 52 }))).toEqual(['low OCR confidence on page(s) 2: 52 (< ocr.minConfidence 70)']);
    expect(reviewReasons(queue, record({}, null, { pages: [1, 2], meanConfidence: 88 }))).toEqual([]);
  });

  it('passes confident results, and minConfidence 0 turns the check off', () => {
    expect(reviewReasons(queue, record({ invoice_number: 0.97, amount: 0.9 }, 0.99))).toEqual([]);
    expect(reviewReasons({ ...queue, review: { ...queue.review, minConfidence: 0 } }, record({ amount: 0.01 }, 0.01))).toEqual([]);
    expect(reviewReasons({ ...queue, review: { ...queue.review, enabled: false } }, record({ amount: 0.01 }, null))).toEqual([]);
  });
});
