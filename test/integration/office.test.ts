import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeValidator } from '../../src/model/index.js';
import { defaultTextLimits, detectFormat, TextExtractor } from '../../src/text/index.js';
import { makeDocx, makeXlsx, zipClaiming } from '../helpers/office.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { tempDir } from '../helpers/testEnv.js';
import { outcomeOf } from '../helpers/extract.js';

const extractor = new TextExtractor();
afterAll(() => extractor.close());
const limits = defaultTextLimits({ timeoutMs: 60_000 });

const codeOf = (bytes: Buffer, l = limits) => outcomeOf(extractor, bytes, l);

const invoiceDocx = () => makeDocx([
  { heading: 'Invoice INV-2026-0042' },
  { paragraph: 'ACME Office Supplies GmbH, Hauptstraße 1, 10115 Berlin' },
  { table: [['Item', 'Qty', 'Price'], ['Paper A4', '10', '45.00'], ['Toner', '1', '89.90']] },
  { paragraph: 'Total due: 134.90 EUR by 2026-12-15' },
]);

describe('office formats, detected from their bytes', () => {
  it('DOCX: headings and tables kept as markdown-like text', async () => {
    const text = await extractor.extract(await invoiceDocx(), limits);
    expect(text.format).toBe('docx');
    expect(text.pages[0]).toContain('# Invoice INV-2026-0042');
    expect(text.pages[0]).toContain('| Paper A4 | 10 | 45.00 |');
    expect(text.pages[0]).toContain('Total due: 134.90 EUR');
  });

  it('DOCX with a macro project and an embedded object: the text is read, the rest ignored', async () => {
    const docm = await makeDocx([{ paragraph: 'Purchase order 7781, total 12.00 EUR' }], { 'word/vbaProject.bin': 'Attribute VB_Name = "AutoOpen"', 'word/embeddings/oleObject1.bin': 'OLE' });
    const text = await extractor.extract(docm, limits);
    expect(text.pages[0]).toBe('Purchase order 7781, total 12.00 EUR');
  });

  it('XLSX: one table per sheet, formulas as their results, dates as dates, rows bounded', async () => {
    const xlsx = await makeXlsx({
      Invoice: [['Item', 'Qty', 'Price'], ['Paper A4', 10, 4.5], ['Date', new Date(Date.UTC(2026, 11, 15))]],
      Notes: [['Paid by transfer']],
    });
    const text = await extractor.extract(xlsx, limits);
    expect(text.format).toBe('xlsx');
    expect(text.pages).toEqual(['## Invoice\n| Item | Qty | Price |\n| Paper A4 | 10 | 4.5 |\n| Date | 2026-12-15 |', '## Notes\n| Paid by transfer |']);
    const many = await makeXlsx({ Big: Array.from({ length: 30 }, (_, i) => [`row ${i}`, i]) });
    const cut = await extractor.extract(many, { ...limits, maxRows: 10 });
    expect(cut.pages[0]!.split('\n')).toHaveLength(11);
    expect(cut.warnings).toContain('ROWS_CUT: sheet Big has 30 rows; the first 10 were read');
  });

  it('HTML and CSV', async () => {
    const html = await extractor.extract(Buffer.from('<!DOCTYPE html><html><body><h2>Receipt 99</h2><p>Café Central</p><table><tr><th>Item</th><th>EUR</th></tr><tr><td>Coffee</td><td>3.60</td></tr></table><script>alert(1)</script></body></html>'), limits);
    expect(html.format).toBe('html');
    expect(html.pages[0]).toBe('## Receipt 99\n\nCafé Central\n\n| Item | EUR |\n| Coffee | 3.60 |');
    const csv = await extractor.extract(Buffer.from('item;qty;price\n"Paper; A4";10;4,50\n"Toner ""XL""";1;89,90\n'), limits);
    expect(csv.format).toBe('csv');
    expect(csv.pages[0]).toBe('| item | qty | price |\n| Paper; A4 | 10 | 4,50 |\n| Toner "XL" | 1 | 89,90 |');
    const long = await extractor.extract(Buffer.from(Array.from({ length: 40 }, (_, i) => `line ${i},${i}`).join('\n')), { ...limits, maxRows: 5 });
    expect(long.pages[0]!.split('\n')).toHaveLength(5);
    expect(long.warnings).toContain('ROWS_CUT: the CSV has 40 rows; the first 5 were read');
  });

  it('prose with commas stays text; the corpus text files stay text', () => {
    expect(detectFormat(Buffer.from('Dear Sir, please find the invoice attached.\nIt is due, as agreed, in 30 days.\nRegards, Anna'))).toBe('text');
  });

  it('zip bombs and other archives are refused from the central directory, before anything inflates', async () => {
    expect(await codeOf(zipClaiming([{ name: '[Content_Types].xml', compressed: 1000, size: 1000 }, { name: 'word/document.xml', compressed: 10_000, size: 2_000_000_000 }])))
      .toMatch(/^TOO_LARGE: the ZIP entry word\/document\.xml claims to inflate 200000 times/);
    expect(await codeOf(zipClaiming([], 60_000))).toMatch(/^TOO_LARGE: the ZIP container has 60000 entries; at most 10000 are read/);
    expect(await codeOf(zipClaiming([{ name: 'photo.jpg', compressed: 10, size: 10 }]))).toMatch(/^UNSUPPORTED_FORMAT: a ZIP archive that is not a DOCX or XLSX document/);
    expect(await codeOf(zipClaiming([{ name: 'mimetype', compressed: 10, size: 10 }, { name: 'content.xml', compressed: 10, size: 10 }]))).toMatch(/^UNSUPPORTED_FORMAT: an OpenDocument file/);
    expect(await codeOf((await invoiceDocx()).subarray(0, 300))).toMatch(/^CORRUPT_DOCUMENT/);
    expect(await codeOf(Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]))).toMatch(/^UNSUPPORTED_FORMAT: the bytes are an OLE2 file .*; docsift reads PDF, image \(PNG, JPEG, TIFF, WebP\), DOCX, XLSX, HTML, CSV, e-mail \(\.eml, Outlook \.msg\), text or markdown/);
  });

  it('a DOCX whose parts are not what they claim: CORRUPT_DOCUMENT', async () => {
    const broken = await makeDocx([{ paragraph: 'x' }], { 'word/document.xml': '<not xml' });
    expect(await codeOf(broken)).toMatch(/^CORRUPT_DOCUMENT: the DOCX document cannot be read/);
  });
});

describe('a DOCX invoice through the whole pipeline', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ documents: documentsQueue() }, 'documents');
  });
  afterAll(() => stack?.close());

  it('ends done with a schema-valid record of format docx', async () => {
    const dir = tempDir('office');
    fs.writeFileSync(path.join(dir, 'invoice.docx'), await invoiceDocx());
    fs.writeFileSync(path.join(dir, 'invoice.xlsx'), await makeXlsx({ Invoice: [['Invoice', 'INV-7'], ['Total', 12.5]] }));
    const statuses = await stack.waitAll([await stack.enqueueFile(path.join(dir, 'invoice.docx')), await stack.enqueueFile(path.join(dir, 'invoice.xlsx'))]);
    for (const status of statuses) {
      expect(status.state, JSON.stringify(status)).toBe('done');
      if (status.state === 'done' && status.record.documentType) expect(makeValidator(stack.config.prompts.types.get(status.record.documentType)!.schema)(status.record.fields).ok).toBe(true);
    }
    expect(statuses.map((s) => s.state === 'done' && s.record.text.format)).toEqual(['docx', 'xlsx']);
  });
});
