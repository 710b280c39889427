import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { groundFields } from '../../../src/pipeline/index.js';
import { defaultTextLimits, TextExtractor } from '../../../src/text/index.js';
import { CORPUS } from '../../helpers/testEnv.js';

const extractor = new TextExtractor();
afterAll(() => extractor.close());

describe('grounding fields in the document text', () => {
  it('finds the labelled values of a real invoice, with page and offsets, and not invented ones', async () => {
    const text = await extractor.extract(fs.readFileSync(path.join(CORPUS, 'AzureInterior.pdf')), defaultTextLimits({ memoryMb: 512 }));
    const g = groundFields({
      invoice_number: 'INV/2023/03/0008', amount: 279.84, date: '2023-03-20', issuer: 'azure   interior',
      iban: 'NL91ABNA0417164300', lines: [{ description: 'Office Chair', amount: 70 }],
    }, text.pages);
    expect(g.invoice_number).toMatchObject({ page: 1, text: 'INV/2023/03/0008' });
    const hit = g.invoice_number!;
    expect(text.pages[0]!.slice(hit.start, hit.end)).toBe('INV/2023/03/0008');
    expect(g.amount).not.toBeNull();
    expect(g.amount!.text).toMatch(/279[.,]84/);
    expect(g.date).not.toBeNull();
    expect(g.issuer!.text.toLowerCase()).toBe('azure interior');
    expect(g['lines.0.description']).not.toBeNull();
    expect(g.iban).toBeNull(); // not in the document: a likely hallucination
  });

  it('finds numbers and dates written differently from the value', () => {
    const pages = ['Datum: 18.04.2014', 'Totaal te betalen: € 1.234,50'];
    const g = groundFields({ date: '2014-04-18', amount: 1234.5 }, pages);
    expect(g.date).toMatchObject({ page: 1, text: '18.04.2014' });
    expect(g.amount).toMatchObject({ page: 2, text: '1.234,50' });
  });
});
