import { describe, expect, it } from 'vitest';
import { QueueFileSchema, type Rule } from '../../../src/config/index.js';
import { DocsiftError } from '../../../src/infra/errors.js';
import type { ResultRecord } from '../../../src/pipeline/index.js';
import { escalationReasons } from '../../../src/worker/escalation.js';

/** The queue file's defaults for escalate.when, with overrides. */
const when = (overrides: Record<string, unknown> = {}) => QueueFileSchema.shape.escalate.unwrap().shape.when.parse(overrides);

function record(parts: Partial<ResultRecord> = {}): ResultRecord {
  return {
    documentType: 'invoice', fields: { invoice_number: 'A-1', amount: 10 }, confidence: { invoice_number: 0.97, amount: 0.99 }, checks: [],
    grounding: { invoice_number: { page: 1, start: 0, end: 3, text: 'A-1' }, amount: { page: 1, start: 9, end: 14, text: '10.00' } },
    classification: { label: 'invoice', method: 'model', confidence: 0.98 }, ...parts,
  } as unknown as ResultRecord;
}

const kinds = (reasons: Array<{ kind: string }>) => reasons.map((r) => r.kind);

describe('when a tier hands a document on', () => {
  it('keeps a confident, grounded result that passes its rules', () => {
    expect(escalationReasons(when({ ungroundedFields: true, minConfidence: 0.5 }), record(), null)).toEqual([]);
  });

  it('a failed rule, an ungrounded value, a low confidence (field or label), a listed type: each with the reason in words', () => {
    const doubtful = record({
      checks: [{ rule: 'fields_sum', status: 'failed', message: 'amount_untaxed + amount_tax = 9, amount 10' }, { rule: 'iban', status: 'skipped', message: 'iban missing' }],
      grounding: { invoice_number: null, amount: { page: 1, start: 9, end: 14, text: '10.00' } },
      confidence: { invoice_number: 0.97, amount: 0.42 },
      classification: { label: 'invoice', method: 'model', confidence: 0.3 },
    });
    const reasons = escalationReasons(when({ ungroundedFields: true, minConfidence: 0.5, documentTypes: ['invoice'] }), doubtful, null);
    expect(reasons.map((r) => r.text)).toEqual([
      'invoice is always read by the next tier',
      'check fields_sum failed: amount_untaxed + amount_tax = 9, amount 10',
      'not found in the document: invoice_number',
      'confidence below 0.5: label 0.3, amount 0.42',
    ]);
    expect(kinds(reasons)).toEqual(['document_type', 'failed_check', 'ungrounded', 'low_confidence']);
    // A doubt about the label or the type is about the whole document; no fields named.
    expect(reasons.map((r) => r.fields)).toEqual([undefined, undefined, ['invoice_number'], undefined]);
    // Each condition has its switch.
    expect(escalationReasons(when({ failedChecks: false }), doubtful, null)).toEqual([]);
  });

  it('names the fields in doubt: those a failed rule reads, ungrounded ones, low-confidence ones (array items by their array)', () => {
    const rules: Rule[] = [{ rule: 'fields_sum', fields: ['amount_untaxed', 'amount_tax'], equals: 'amount', tolerance: 0.02 }, { rule: 'iban', field: 'iban' }];
    const doubtful = record({
      checks: [{ rule: 'fields_sum', status: 'failed', message: 'x' }, { rule: 'iban', status: 'passed', message: 'ok' }],
      confidence: { invoice_number: 0.97, 'lines.0.amount': 0.2, 'lines.1.amount': 0.3 },
    });
    const reasons = escalationReasons(when({ minConfidence: 0.5 }), doubtful, null, rules);
    expect(reasons.map((r) => r.fields)).toEqual([['amount_untaxed', 'amount_tax', 'amount'], ['lines']]);
  });

  it('hands on invalid output and a document too long for the context, and nothing else that failed', () => {
    expect(kinds(escalationReasons(when(), null, new DocsiftError('MODEL_OUTPUT_INVALID', 'after 1 re-ask')))).toEqual(['invalid_output']);
    expect(kinds(escalationReasons(when(), null, new DocsiftError('DOCUMENT_TOO_LONG', 'does not fit')))).toEqual(['too_long']);
    expect(escalationReasons(when({ invalidOutput: false, tooLong: false }), null, new DocsiftError('MODEL_OUTPUT_INVALID', 'x'))).toEqual([]);
    expect(escalationReasons(when(), null, new DocsiftError('CORRUPT_DOCUMENT', 'x'))).toEqual([]);
    // "other" has no fields to doubt.
    expect(escalationReasons(when({ minConfidence: 1 }), record({ documentType: null, fields: null }), null)).toEqual([]);
  });
});
