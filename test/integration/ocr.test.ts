import fs from 'node:fs';
import path from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeValidator } from '../../src/model/index.js';
import { groundFields } from '../../src/pipeline/index.js';
import { defaultTextLimits, TextExtractor, type OcrSettings, type TextLimits } from '../../src/text/index.js';
import { needsOcr } from '../../src/text/ocr.js';
import { OcrSchema } from '../../src/config/index.js';
import { makePdf } from '../helpers/pdf.js';
import { popplerWords, recall, renderPage, scan, tiff } from '../helpers/scans.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { CORPUS, tempDir } from '../helpers/testEnv.js';
import { outcomeOf } from '../helpers/extract.js';

// 200 dpi keeps each page at 1-3 s on two cores; the queue default is 300.
const limits = (ocr: Partial<OcrSettings> = {}): TextLimits => defaultTextLimits({ timeoutMs: 60_000, ocr: { dpi: 200, ...ocr } });
const extractor = new TextExtractor();
afterAll(() => extractor.close());

const codeOf = (bytes: Buffer, l = limits()) => outcomeOf(extractor, bytes, l);

/** A page of a corpus invoice as a scanner would give it back: 200 dpi, turned 1°, speckled, JPEG. */
const scanned = async (name: string, options: Parameters<typeof scan>[1] = {}) => scan(await renderPage(path.join(CORPUS, name), 1, 200), { degrees: 1, noise: 0.002, quality: 80, ...options });

describe('OCR of scans made from the corpus (libtesseract, the default where installed; eng, offline)', () => {
  // English invoices; the AWS one reads 0.90 (white text on tinted rows) and is left out.
  for (const name of ['oyo.pdf', 'AzureInterior.pdf', 'coolblue1.pdf']) {
    it(`${name}: a JPEG scan and an image-only PDF recall at least 95% of the words pdftotext reads from the original`, async () => {
      const jpeg = await scanned(name);
      const reference = popplerWords(path.join(CORPUS, name), 1);
      const image = await extractor.extract(jpeg, limits());
      // test/prerequisites.sh installs tesseract-ocr, which brings libtesseract5: "auto" takes it.
      expect(image).toMatchObject({ format: 'image', sources: ['ocr'], ocr: { pages: [1], engine: 'libtesseract' } });
      expect(recall(reference, image.pages[0]!)).toBeGreaterThanOrEqual(0.95);
      const pdf = await extractor.extract(makePdf({ pages: [{ jpeg }] }), limits());
      expect(pdf).toMatchObject({ format: 'pdf', sources: ['ocr'], ocr: { pages: [1] } });
      expect(recall(reference, pdf.pages[0]!)).toBeGreaterThanOrEqual(0.95);
      // The page rendered from the PDF reads less confidently than the JPEG (53-61 against 83-91:
      // pdf.js smooths the speckles into grey specks that read as noise), which is why it is also
      // tried turned; sideways and upside-down pages read 28-47 (docs/OCR.md).
      expect(pdf.ocr!.meanConfidence).toBeGreaterThan(50);
    });
  }

  it('reports each page OCR has read, and reads WebP', async () => {
    const png = await renderPage(path.join(CORPUS, 'oyo.pdf'), 1, 200);
    const progress: Array<[number, number]> = [];
    const { createCanvas: canvasOf, loadImage } = await import('@napi-rs/canvas');
    const image = await loadImage(png);
    const canvas = canvasOf(image.width, image.height);
    canvas.getContext('2d').drawImage(image, 0, 0);
    const webp = canvas.toBuffer('image/webp', 90);
    const text = await extractor.extract(webp, limits(), (done, total) => progress.push([done, total]));
    expect(progress).toEqual([[1, 1]]);
    expect(recall(popplerWords(path.join(CORPUS, 'oyo.pdf'), 1), text.pages[0]!)).toBeGreaterThanOrEqual(0.95);
  });

  it('grounding finds labelled values in OCR text, with their page', async () => {
    const text = await extractor.extract(makePdf({ pages: ['A cover page with a text layer of its own, long enough.', { jpeg: await scanned('AzureInterior.pdf') }] }), limits());
    const [labels] = JSON.parse(fs.readFileSync(path.join(CORPUS, 'AzureInterior.json'), 'utf8')) as Array<{ invoice_number: string; amount: number; date_due: string }>;
    const g = groundFields({ invoice_number: labels!.invoice_number, amount: labels!.amount }, text.pages);
    expect(g.invoice_number).toMatchObject({ page: 2, text: 'INV/2023/03/0008' });
    expect(g.amount).toMatchObject({ page: 2 });
  });

  it('a mixed PDF is read page by page: the text layer where there is one, OCR where there is not', async () => {
    const text = await extractor.extract(makePdf({ pages: ['Delivery note 17\nThis page has a text layer of its own, kept as it is.', { jpeg: await scanned('AzureInterior.pdf') }] }), limits());
    expect(text.sources).toEqual(['text', 'ocr']);
    expect(text.pages[0]).toContain('Delivery note 17');
    expect(text.ocr!.pages).toEqual([2]);
    expect(text.pages[1]).toContain('INV/2023/03/0008');
  });

  it('reads at most ocr.maxPages pages of a PDF by OCR, and says what it left', async () => {
    const text = await extractor.extract(makePdf({ pages: [{ jpeg: await scanned('AzureInterior.pdf') }, null, null] }), limits({ maxPages: 1 }));
    expect(text.sources).toEqual(['ocr', 'text', 'text']);
    expect(text.warnings).toContain('OCR_PAGES_SKIPPED: 2 page(s) without a text layer beyond ocr.maxPages (1) were not read');
  });

  it('orientation: a phone photo with an EXIF rotation tag, a page upside down, a multi-page TIFF', async () => {
    const reference = popplerWords(path.join(CORPUS, 'coolblue1.pdf'), 1);
    const png = await renderPage(path.join(CORPUS, 'coolblue1.pdf'), 1, 200);
    // Stored sideways with tag 6 ("turn 90° clockwise to view"): the decoder applies the tag.
    const { withExifOrientation } = await import('../helpers/scans.js');
    const sideways = await extractor.extract(withExifOrientation(await scan(png, { degrees: -90, quality: 85 }), 6), limits());
    expect(recall(reference, sideways.pages[0]!)).toBeGreaterThanOrEqual(0.95);
    expect(sideways.warnings.filter((w) => w.startsWith('OCR_ROTATED'))).toEqual([]);
    // No tag: read upright first, badly, then at 90/180/270; the most confident reading wins.
    const upsideDown = await extractor.extract(await scan(png, { degrees: 180, quality: 85 }), limits());
    expect(recall(reference, upsideDown.pages[0]!)).toBeGreaterThanOrEqual(0.95);
    expect(upsideDown.warnings).toContain('OCR_ROTATED: page 1 was read turned 180° clockwise');
    const pages = await extractor.extract(await tiff([png, await renderPage(path.join(CORPUS, 'oyo.pdf'), 1, 200)]), limits());
    expect(pages).toMatchObject({ format: 'image', sources: ['ocr', 'ocr'], ocr: { pages: [1, 2] } });
    expect(recall(popplerWords(path.join(CORPUS, 'oyo.pdf'), 1), pages.pages[1]!)).toBeGreaterThanOrEqual(0.95);
  });

  it('bad and hostile images get stable codes before anything large is decoded', async () => {
    // A PNG header claiming 100,000 x 100,000 pixels (40 GB decoded): refused from the header.
    const bomb = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.from([0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 6, 0, 0, 0]), Buffer.alloc(64)]);
    expect(await codeOf(bomb)).toMatch(/^TOO_LARGE: the image is 100000 x 100000 pixels/);
    const own = limits();
    const jpeg = await scanned('oyo.pdf');
    expect(await codeOf(Buffer.concat([jpeg.subarray(0, 600), Buffer.alloc(600)]))).toMatch(/^(CORRUPT_DOCUMENT|EMPTY_TEXT)/);
    expect(await codeOf(jpeg, limits({ enabled: false }))).toBe('UNSUPPORTED_FORMAT: the bytes are an image, and OCR is off for this queue (ocr.enabled)');
    expect(await codeOf(makePdf({ pages: [null] }), limits({ enabled: false }))).toMatch(/^EMPTY_TEXT: .*OCR is off for this queue/);
    expect(await codeOf(makePdf({ pages: [null] }))).toMatch(/^EMPTY_TEXT: the PDF has 1 page\(s\) and OCR found no text on them/);
    // The configuration refuses such a language when it loads (doctor.test.ts); the stage checks again for callers that build settings themselves.
    expect(await codeOf(jpeg, { ...own, ocr: { ...own.ocr, languages: ['deu'] } })).toMatch(/^OCR_FAILED: no OCR data for language "deu" \(install @tesseract.js-data\/deu\); installed: eng/);
    // Below the configurable minimum (1 s), so that no machine is fast enough to finish in time.
    expect(await codeOf(jpeg, { ...own, ocr: { ...own.ocr, pageTimeoutMs: 100 } })).toBe('OCR_FAILED: reading page 1 took longer than 100 ms (ocr.pageTimeoutMs)');
    // 64 megapixels (under the header limit) in an OCR process capped at 512 MB: the OS refuses the pixels.
    const canvas = createCanvas(8000, 8000);
    canvas.getContext('2d').fillStyle = '#ffffff';
    canvas.getContext('2d').fillRect(0, 0, 8000, 8000);
    expect(await codeOf(canvas.toBuffer('image/png'), limits({ pageMemoryMb: 512 }))).toMatch(/^TOO_LARGE: reading page 1 needed more than 512 MB \(ocr.pageMemoryMb\)/);
  });

  it('a queue can ask for either engine, and nothing else', () => {
    expect(OcrSchema.parse({ engine: 'libtesseract' }).engine).toBe('libtesseract');
    expect(OcrSchema.parse({}).engine).toBe('auto');
    expect(() => OcrSchema.parse({ engine: 'tesseract' })).toThrow(/expected one of .*auto.*libtesseract.*tesseract\.js/);
    expect(() => OcrSchema.parse({ languages: ['osd'] })).toThrow(/osd is orientation detection data/);
  });

  it('decides per page whether the text layer is usable', () => {
    expect(needsOcr('', 20)).toBe(true);
    expect(needsOcr('  3  \n', 20)).toBe(true);
    expect(needsOcr('Invoice 42 from ACME GmbH, total 10.00 EUR', 20)).toBe(false);
    expect(needsOcr('\uE001\uE002\uE003\uE004\uE005\uE006\uE007\uE008\uE009\uE00A\uE00B\uE00C\uE00D\uE00E\uE00F\uE010\uE011\uE012\uE013\uE014\uE015 12', 20)).toBe(true);
  });
});

describe('the tesseract.js engine (WebAssembly from npm: what reads where libtesseract is not installed)', () => {
  const wasm = (ocr: Partial<OcrSettings> = {}) => limits({ engine: 'tesseract.js', ...ocr });

  it('reads a JPEG scan and an image-only PDF as well as libtesseract does', async () => {
    const jpeg = await scanned('oyo.pdf');
    const reference = popplerWords(path.join(CORPUS, 'oyo.pdf'), 1);
    for (const bytes of [jpeg, makePdf({ pages: [{ jpeg }] })]) {
      const text = await extractor.extract(bytes, wasm());
      expect(text.ocr).toMatchObject({ pages: [1], engine: 'tesseract.js' });
      expect(recall(reference, text.pages[0]!)).toBeGreaterThanOrEqual(0.95);
    }
  });

  // Decoding (TIFF, WebP, EXIF) is the engines' shared canvas path, tested above; turning is not:
  // tesseract.js tries 90, 180 and 270 where libtesseract asks OSD.
  it('turns a sideways page the same way as libtesseract, which asks OSD instead of trying each turn', async () => {
    const sideways = await scan(await renderPage(path.join(CORPUS, 'AzureInterior.pdf'), 1, 200), { degrees: 90, quality: 85 });
    const reference = popplerWords(path.join(CORPUS, 'AzureInterior.pdf'), 1);
    const [byOsd, byTrying] = [await extractor.extract(sideways, limits()), await extractor.extract(sideways, wasm())];
    expect(byOsd.ocr!.engine).toBe('libtesseract');
    for (const text of [byOsd, byTrying]) expect(recall(reference, text.pages[0]!)).toBeGreaterThanOrEqual(0.95);
    expect(byOsd.warnings.filter((w) => w.startsWith('OCR_ROTATED'))).toEqual(byTrying.warnings.filter((w) => w.startsWith('OCR_ROTATED')));
    expect(byOsd.warnings.find((w) => w.startsWith('OCR_ROTATED'))).toMatch(/turned (90|270)° clockwise/);
  });
});

describe('scans through the whole pipeline (worker, generated model, real llama.cpp)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ documents: documentsQueue({ ocr: { dpi: 200 } }) }, 'documents');
  });
  afterAll(() => stack?.close());

  it('a JPEG scan and an image-only PDF end done with schema-valid records that say which pages OCR read', async () => {
    const dir = tempDir('scans');
    fs.writeFileSync(path.join(dir, 'azure.jpg'), await scanned('AzureInterior.pdf'));
    fs.writeFileSync(path.join(dir, 'oyo-scan.pdf'), makePdf({ pages: [{ jpeg: await scanned('oyo.pdf') }] }));
    const outcomes = [await stack.enqueueFile(path.join(dir, 'azure.jpg')), await stack.enqueueFile(path.join(dir, 'oyo-scan.pdf'))];
    const statuses = await stack.waitAll(outcomes);
    for (const status of statuses) {
      expect(status.state, JSON.stringify(status)).toBe('done');
      if (status.state !== 'done') continue;
      const record = status.record;
      expect(record.text.ocr).toMatchObject({ pages: [1], meanConfidence: expect.any(Number) });
      if (record.documentType) expect(makeValidator(stack.config.prompts.types.get(record.documentType)!.schema)(record.fields).ok).toBe(true);
    }
    expect(statuses.map((s) => s.state === 'done' && s.record.text.format)).toEqual(['image', 'pdf']);
    // The job's log says what OCR read (Bull Board shows it).
    const { logs } = await stack.queue.getJobLogs(outcomes[0]!.jobId);
    expect(logs.join('\n')).toMatch(/text: image, 1 page\(s\), \d+ chars in \d+ ms, OCR on page\(s\) 1 \(mean confidence \d+\)/);
  });
});
