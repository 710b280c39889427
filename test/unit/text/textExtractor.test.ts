import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextExtractor, defaultTextLimits, detectFormat } from '../../../src/text/index.js';
import { DocsiftError } from '../../../src/infra/errors.js';
import { corpusFiles, CORPUS, tempDir } from '../../helpers/testEnv.js';
import { writeHostileCorpus } from '../../helpers/hostileCorpus.js';
import { makeBombPdf, makePdf } from '../../helpers/pdf.js';
import { spaceWords } from '../../../src/text/poppler.js';
import { popplerWords, recall, renderPage, scan } from '../../helpers/scans.js';

// Both PDF engines are held to the same checks; the machine's poppler comes with the test
// prerequisites (libpoppler-glib8), as libtesseract does.
const ENGINES = ['pdf.js', 'poppler'] as const;
let limits = defaultTextLimits({ maxPages: 50, timeoutMs: 60_000, memoryMb: 512 });
const extractor = new TextExtractor();
afterAll(() => extractor.close());

async function codeOf(bytes: Buffer, overrides: Partial<typeof limits> = {}): Promise<string> {
  try {
    await extractor.extract(bytes, { ...limits, ...overrides });
  } catch (err) {
    expect(err).toBeInstanceOf(DocsiftError);
    return (err as DocsiftError).code;
  }
  return 'OK';
}

describe.each(ENGINES)('text extraction on the shared invoice corpus (%s)', (engine) => {
  beforeAll(() => { limits = { ...limits, pdfEngine: engine }; });
  for (const file of corpusFiles()) {
    it(`reads ${file.slice(CORPUS.length + 1)}`, async () => {
      const text = await extractor.extract(fs.readFileSync(file), limits);
      expect(text.format).toBe(file.endsWith('.pdf') ? 'pdf' : 'text');
      expect(text.pages.length).toBeGreaterThan(0);
      expect(text.chars).toBeGreaterThan(200);
      expect(text.chars).toBe(text.pages.reduce((n, p) => n + p.length, 0));
    });
  }

  it('keeps per-page text', async () => {
    const text = await extractor.extract(fs.readFileSync(`${CORPUS}/QualityHosting.pdf`), limits);
    expect(text.pages).toHaveLength(2);
    expect(text.pages[0]).not.toBe(text.pages[1]);
  });
});

describe('the two PDF engines read the same words', () => {
  it('poppler finds at least 97% of the words pdf.js finds on every corpus PDF, cells apart, not glued', async () => {
    const words = (pages: string[]) => pages.join('\n').split(/\s+/).filter(Boolean);
    for (const file of corpusFiles().filter((f) => f.endsWith('.pdf'))) {
      const bytes = fs.readFileSync(file);
      const reference = words((await extractor.extract(bytes, { ...limits, pdfEngine: 'pdf.js' })).pages);
      const found = new Map<string, number>();
      for (const w of words((await extractor.extract(bytes, { ...limits, pdfEngine: 'poppler' })).pages)) found.set(w, (found.get(w) ?? 0) + 1);
      let hits = 0;
      for (const w of reference) {
        const n = found.get(w) ?? 0;
        if (n > 0) { hits++; found.set(w, n - 1); }
      }
      expect(hits / reference.length, file).toBeGreaterThanOrEqual(0.97);
    }
    // poppler's own page text joins neighbouring cells; the character boxes set them apart.
    const coolblue = (await extractor.extract(fs.readFileSync(`${CORPUS}/coolblue1.pdf`), { ...limits, pdfEngine: 'poppler' })).pages[0]!;
    expect(coolblue).toMatch(/Aantal Prijs per stuk/);
    expect(coolblue).toMatch(/Mario Kart 7 3DS\t1\t€ 44,99\t21%\t€ 44,99/);
  });

  it('both render a scanned page that OCR reads to at least 95% of its words (poppler through cairo, pdf.js through the canvas)', async () => {
    const jpeg = await scan(await renderPage(`${CORPUS}/oyo.pdf`, 1, 300), { degrees: 1, quality: 85 });
    const pdf = makePdf({ pages: [{ jpeg }] });
    const reference = popplerWords(`${CORPUS}/oyo.pdf`, 1);
    for (const engine of ENGINES) {
      const text = await extractor.extract(pdf, { ...limits, pdfEngine: engine });
      expect(text.sources, engine).toEqual(['ocr']);
      expect(recall(reference, text.pages[0]!), engine).toBeGreaterThanOrEqual(0.95);
    }
  });

  it('spaces poppler\'s glued cells by the gaps between character boxes, never on rounding noise', () => {
    // Boxes (x1, y1, x2, y2) of 10 pt characters, 5 pt wide, one after another unless a gap is given.
    const boxes = (gaps: number[], height = 10) => {
      let x = 0;
      return new Float64Array(gaps.flatMap((gap) => { x += gap; const box = [x, 0, x + 5, height]; x += 5; return box; }));
    };
    expect(spaceWords('abcd', boxes([0, 0.001, 3, 20]))).toBe('ab c\td');
    expect(spaceWords('a\nb', boxes([0, 30, 0]))).toBe('a\nb');
    // Empty glyph boxes (height 0) and gaps of a hundredth of a point: one word.
    expect(spaceWords('word', boxes([0, 0.01, 0.01, 0.01], 0))).toBe('word');
    // A box count that does not match the text: the text as poppler gave it.
    expect(spaceWords('abc', boxes([0, 9]))).toBe('abc');
  });

  it('the hostile corpus\'s PDFs read with poppler end with the codes the worker test holds pdf.js to', async () => {
    // hostile.test.ts runs them through a worker with the default engine (pdf.js), same limits.
    const hostile = { ...limits, maxPages: 500, memoryMb: 256, pdfEngine: 'poppler' as const };
    for (const c of writeHostileCorpus(tempDir('hostile-poppler')).filter((c) => c.file.endsWith('.pdf'))) {
      const code = await codeOf(fs.readFileSync(c.file), hostile);
      // Two differ, for the better. 400 MB of spaces: pdf.js holds the inflated stream and meets
      // the memory cap; poppler reads it as it inflates, within the cap, and finds an empty page.
      // 20,000 nested arrays: pdf.js runs out of stack; poppler's parser bounds the depth and
      // reads the page's one word ("nested", from the text layer and again by OCR).
      const expected = c.file.endsWith('bomb-spaces.pdf') ? ['EMPTY_TEXT'] : c.file.endsWith('deeply-nested.pdf') ? ['OK'] : c.expect.state === 'done' ? ['OK'] : c.expect.codes;
      expect(expected, `${c.file} (${c.why})`).toContain(code);
    }
  });
});

describe.each(ENGINES)('broken and hostile files get stable codes (%s)', (engine) => {
  beforeAll(() => { limits = { ...limits, pdfEngine: engine }; });
  const pdf = fs.readFileSync(`${CORPUS}/oyo.pdf`);

  it('zero bytes: EMPTY_TEXT', async () => expect(await codeOf(Buffer.alloc(0))).toBe('EMPTY_TEXT'));
  it('truncated PDF: CORRUPT_DOCUMENT', async () => expect(await codeOf(pdf.subarray(0, 3000))).toBe('CORRUPT_DOCUMENT'));
  it('encrypted PDF: ENCRYPTED', async () => expect(await codeOf(makePdf({ pages: ['secret'], encrypted: true }))).toBe('ENCRYPTED'));
  it('PDF without a text layer: EMPTY_TEXT', async () => expect(await codeOf(makePdf({ pages: [null, null] }))).toBe('EMPTY_TEXT'));
  it('binary garbage named .pdf: UNSUPPORTED_FORMAT', async () => expect(await codeOf(Buffer.from([0x13, 0x00, 0xff, 0x10, 0x01]))).toBe('UNSUPPORTED_FORMAT'));
  it('a truncated PNG: CORRUPT_DOCUMENT (images are read by OCR, see ocr.test.ts)', async () => expect(await codeOf(Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'))).toBe('CORRUPT_DOCUMENT'));
  it('a GIF: UNSUPPORTED_FORMAT', async () => expect(await codeOf(Buffer.from('GIF89a\x01\x00\x01\x00', 'latin1'))).toBe('UNSUPPORTED_FORMAT'));
  it('over maxBytes: TOO_LARGE', async () => expect(await codeOf(pdf, { maxBytes: 1000 })).toBe('TOO_LARGE'));
  it('over maxPages: TOO_LARGE', async () => expect(await codeOf(makePdf({ pages: ['a', 'b', 'c'] }), { maxPages: 2 })).toBe('TOO_LARGE'));
  it('over the time limit: EXTRACTION_TIMEOUT, and the next document still parses', async () => {
    expect(await codeOf(pdf, { timeoutMs: 1 })).toBe('EXTRACTION_TIMEOUT');
    expect(await codeOf(pdf)).toBe('OK');
  });

  it('a decompression bomb past the parser heap cap: TOO_LARGE, and the pool recovers', async () => {
    const bomb = makeBombPdf(32);
    expect(bomb.length).toBeLessThan(300_000);
    expect(await codeOf(bomb, { memoryMb: 256 })).toBe('TOO_LARGE');
    expect(await codeOf(pdf)).toBe('OK');
  });

  it('a bomb that inflates outside V8\'s heap stays within the OS cap: pdf.js TOO_LARGE, poppler an empty page', async () => {
    // 400 MB of spaces in a 400 KB file: with only a V8 heap cap pdf.js peaked at 760 MB RSS
    // under memoryMb 64 and returned "ok"; under the cap it fails. poppler reads the stream as it
    // inflates: a page of spaces, no text. Every parser's peak RSS is sampled while it runs.
    const bomb = makeBombPdf(400, 'spaces');
    expect(bomb.length).toBeLessThan(500_000);
    let peakKb = 0;
    const sampler = setInterval(() => { peakKb = Math.max(peakKb, ...parserPeaksKb()); }, 10);
    try {
      expect(await codeOf(bomb, { memoryMb: 256, ocr: { ...limits.ocr, enabled: false } })).toBe(engine === 'poppler' ? 'EMPTY_TEXT' : 'TOO_LARGE');
    } finally {
      clearInterval(sampler);
    }
    expect(peakKb).toBeGreaterThan(0);
    expect(peakKb).toBeLessThanOrEqual(256 * 1024);
    expect(await codeOf(pdf, { memoryMb: 256 })).toBe('OK');
  });

  it('a page too large to render for OCR (200 inches square: 60,000 pixels a side at 300 dpi): TOO_LARGE', async () => {
    const huge = Buffer.from(makePdf({ pages: [null] }).toString('latin1').replace('/MediaBox [0 0 612 792]', '/MediaBox [0 0 14400 14400]'), 'latin1');
    expect(await codeOf(huge)).toBe('TOO_LARGE');
  });

  it('reads a hand-made PDF page by page', async () => {
    const text = await extractor.extract(makePdf({ pages: ['Invoice 42\nTotal 10.00 EUR', 'Page two'] }), limits);
    expect(text.pages).toHaveLength(2);
    expect(text.pages[0]).toContain('Invoice 42');
    expect(text.pages[1]).toContain('Page two');
  });
});

describe('plain text and markdown', () => {
  it('detects the format from the bytes, not the name', () => {
    expect(detectFormat(Buffer.from('%PDF-1.7\n...'))).toBe('pdf');
    expect(detectFormat(Buffer.from('# Invoice\n\n| a | b |\n|---|---|\n'))).toBe('markdown');
    expect(detectFormat(Buffer.from('Invoice 12\nTotal: 3.00'))).toBe('text');
  });

  it('splits pages on form feeds', async () => {
    const text = await extractor.extract(Buffer.from('page one\fpage two'), limits);
    expect(text.pages).toEqual(['page one', 'page two']);
  });

  it('reads invalid UTF-8 as Windows-1252 with a warning', async () => {
    const text = await extractor.extract(Buffer.from([0x50, 0x72, 0x69, 0x78, 0x20, 0x80, 0x20, 0x31, 0x30]), limits);
    expect(text.pages[0]).toBe('Prix € 10');
    expect(text.warnings[0]).toMatch(/^INVALID_UTF8/);
  });

  it('whitespace only: EMPTY_TEXT', async () => expect(await codeOf(Buffer.from('  \n\t\n'))).toBe('EMPTY_TEXT'));
});

/** VmHWM (peak RSS, KB) of every PDF parser this process has started, from /proc. */
function parserPeaksKb(): number[] {
  const peaks: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== process.pid) continue;
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pdfChild')) continue;
      peaks.push(Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0));
    } catch { /* gone meanwhile */ }
  }
  return peaks;
}
