import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { normaliseDate, normaliseNumber, scoreDocuments, scoreTiers, valuesMatch } from '../../../src/pipeline/evaluate.js';
import { CORPUS } from '../../helpers/testEnv.js';

describe('eval normalisation, on values from the invoice corpus', () => {
  it('numbers with either decimal separator, symbols and thousands separators', () => {
    expect(normaliseNumber('1.234,50')).toBe(1234.5);
    expect(normaliseNumber('1,234.50')).toBe(1234.5);
    expect(normaliseNumber('€ 279,84')).toBe(279.84);
    expect(normaliseNumber('₹1,939')).toBe(1939);
    expect(normaliseNumber('12')).toBe(12);
    expect(normaliseNumber('n/a')).toBeNull();
    expect(valuesMatch(279.84, '279,84')).toBe(true);
    expect(valuesMatch(1939.0, '1939.00')).toBe(true);
    expect(valuesMatch(16.94, 16.95)).toBe(false);
  });

  it('dates in common forms', () => {
    expect(normaliseDate('2023-03-20')).toBe('2023-03-20');
    expect(normaliseDate('31/12/2017')).toBe('2017-12-31');
    expect(normaliseDate('18 april 2014')).toBe('2014-04-18');
    expect(normaliseDate('April 18, 2014')).toBe('2014-04-18');
    expect(normaliseDate('18.04.14')).toBe('2014-04-18');
    expect(valuesMatch('2017-12-31', '31.12.2017')).toBe(true);
  });

  it('strings ignore case and whitespace', () => {
    expect(valuesMatch('Azure Interior', '  azure   INTERIOR ')).toBe(true);
    expect(valuesMatch('INV/2023/03/0008', 'INV/2023/03/0009')).toBe(false);
    expect(valuesMatch(null, null)).toBe(true);
  });
});

describe('scoring', () => {
  const labelled = fs.readdirSync(CORPUS).filter((f) => f.endsWith('.json')).map((f) => {
    const expected = (JSON.parse(fs.readFileSync(path.join(CORPUS, f), 'utf8')) as Record<string, unknown>[])[0]!;
    const doc = fs.readdirSync(CORPUS).find((d) => d !== f && path.parse(d).name === path.parse(f).name)!;
    return { filename: doc, expected };
  });
  const fields = ['invoice_number', 'issuer', 'date', 'currency', 'amount', 'amount_untaxed', 'amount_tax', 'iban'];

  it('a perfect prediction file scores 100%', () => {
    const predictions = new Map(labelled.map((l) => [l.filename, { ...l.expected }]));
    const report = scoreDocuments(labelled, predictions, fields);
    expect(report.passed).toBe(labelled.length);
    expect(report.overallExactMatch).toBe(1);
    for (const f of report.fields) expect([f.exactMatch, f.precision, f.recall]).toEqual([1, 1, 1]);
  });

  it('counts wrong, missing and invented values as precision and recall errors', () => {
    const [first, second] = labelled;
    const predictions = new Map<string, Record<string, unknown> | { error: string }>([
      [first!.filename, { ...first!.expected, invoice_number: 'WRONG' }],
      [second!.filename, { error: 'CORRUPT_DOCUMENT: x' }],
    ]);
    const report = scoreDocuments([first!, second!], predictions, fields);
    const inv = report.fields.find((f) => f.field === 'invoice_number')!;
    expect(inv).toMatchObject({ labelled: 2, exact: 0, truePositives: 0, falsePositives: 1, falseNegatives: 2 });
    expect(inv.precision).toBe(0);
    expect(report.perDocument[1]!.error).toBe('CORRUPT_DOCUMENT: x');
    expect(report.passed).toBe(0);
  });
});

describe('scoring per model tier', () => {
  const tokens = (n: number) => ({ prompt: n, reused: 0, generated: 10, forced: 0 });
  const doc = (filename: string, matches: boolean[]) => ({ filename, pass: matches.every(Boolean), fields: matches.map((match, i) => ({ field: `f${i}`, expected: 1, predicted: match ? 1 : 2, match })) });

  it('what each tier read and finished, the exact match of the documents final there, and its cost per document read', () => {
    const perDocument = [doc('a.pdf', [true, true]), doc('b.pdf', [true, false]), doc('c.pdf', [false, false]), doc('d.pdf', [true, true])];
    const paths = new Map([
      ['a.pdf', [{ queue: 'small', tokens: tokens(90), modelMs: 1000 }]],
      ['b.pdf', [{ queue: 'small', tokens: tokens(190), modelMs: 3000 }]],
      ['c.pdf', [{ queue: 'small', tokens: tokens(290), modelMs: 2000 }, { queue: 'large', tokens: tokens(490), modelMs: 8000 }]],
      ['d.pdf', [{ queue: 'small', tokens: tokens(390), modelMs: 2000 }, { queue: 'large', tokens: tokens(690), modelMs: 12000 }]],
    ]);
    expect(scoreTiers(perDocument, paths)).toEqual({
      escalatedShare: 0.5,
      tiers: [
        { queue: 'small', read: 4, final: 2, exactMatch: 0.75, tokensPerDocument: 250, modelSecondsPerDocument: 2 },
        { queue: 'large', read: 2, final: 2, exactMatch: 0.5, tokensPerDocument: 600, modelSecondsPerDocument: 10 },
      ],
    });
  });
});
