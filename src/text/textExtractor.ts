import { OcrSchema, QueueFileSchema } from '../config/index.js';
import { DocsiftError } from '../infra/errors.js';
import { ChildPool, isFailure, runtimeReservationMb, type ChildFailure } from './cappedChild.js';
import { decodeText } from './decode.js';
import { detectFormat, isMail, type DocumentFormat } from './detectFormat.js';
import type { MailParts } from './mail.js';
import { imageKind, imagePages } from './images.js';
import { OcrPool, type OcrSettings } from './ocr.js';
import type { OcrEngineName } from './ocrChild.js';

type OcrReading = { confidence: number; engine: OcrEngineName };
import type { OfficeFormat, OfficeReply, OfficeRequest } from './officeChild.js';
import type { PdfEngineName, PdfReply, PdfRequest } from './pdfChild.js';

export interface ExtractedText {
  format: DocumentFormat;
  /** Text of each page (one page for text and markdown unless split by form feeds). */
  pages: string[];
  /** Where each page's text came from: the PDF's text layer (or the text file), or OCR. */
  sources: Array<'text' | 'ocr'>;
  /** Pages read by OCR (1-based) and their mean word confidence (0–100); null when none were. */
  ocr: { pages: number[]; meanConfidence: number; engine: OcrEngineName } | null;
  chars: number;
  warnings: string[];
}

export interface TextLimits {
  maxBytes: number;
  maxPages: number;
  /** Rows read per spreadsheet sheet or CSV file. */
  maxRows: number;
  /** Attachments of a mail read at most. */
  maxAttachments: number;
  timeoutMs: number;
  memoryMb: number;
  /** The library that reads PDF text layers (the queue's pdf.engine). */
  pdfEngine: PdfEngineName;
  ocr: OcrSettings;
}

/** A queue's limits and OCR settings as the extractor takes them. */
export function textLimits(queue: { limits: { maxBytes: number; maxPages: number; maxRows: number; maxAttachments: number; textTimeoutMs: number; textMemoryMb: number }; pdf: { engine: PdfEngineName }; ocr: OcrSettings }): TextLimits {
  const { limits } = queue;
  return { maxBytes: limits.maxBytes, maxPages: limits.maxPages, maxRows: limits.maxRows, maxAttachments: limits.maxAttachments, timeoutMs: limits.textTimeoutMs, memoryMb: limits.textMemoryMb, pdfEngine: queue.pdf.engine, ocr: queue.ocr };
}

/** A queue's defaults (src/config/queues.ts), with overrides: for the tests, the bench and callers without a queue. */
export function defaultTextLimits(overrides: Partial<Omit<TextLimits, 'ocr'>> & { ocr?: Partial<OcrSettings> } = {}): TextLimits {
  const { ocr, ...rest } = overrides;
  return { ...textLimits({ limits: QueueFileSchema.shape.limits.parse({}), pdf: QueueFileSchema.shape.pdf.parse({}), ocr: { ...OcrSchema.parse({}), ...ocr } }), ...rest };
}

/** What a parser maps besides V8's heap: Node, pdf.js, buffers (measured ~150 MB on an invoice). */
const OUTSIDE_HEAP_MB = 192;

/** A child is replaced after this many documents so that whatever pdf.js keeps does not pile up. */
const DOCUMENTS_PER_CHILD = 200;

/** Called as OCR finishes each page (job progress). */
export type OcrProgress = (done: number, total: number) => void;

/**
 * Text extraction behind one call. Plain text is decoded in-process (cheap); PDFs go to a pool
 * of child processes, one per concurrent job, each with a heap cap, an OS memory cap and a time
 * limit (--max-old-space-size caps only V8's heap; pdf.js inflates streams into ArrayBuffers
 * outside it: a 400 KB PDF of Flate-compressed spaces reached 760 MB RSS under a 64 MB heap cap,
 * and under RLIMIT_DATA it fails "Array buffer allocation failed" at 189 MB RSS of 256 MB; the
 * heap cap stays below the OS cap, since a heap that runs into the OS cap first makes V8 retry
 * for 85 s before it aborts, while its own heap limit ends it in 2 s). Pages without a usable
 * text layer, and images, are read by OCR in a bounded pool of their own (ocr.ts).
 */
export class TextExtractor {
  private readonly pdf = new ChildPool<PdfRequest, PdfReply>('pdfChild.js', () => Infinity, DOCUMENTS_PER_CHILD, (mb) => ({ capMb: mb + runtimeReservationMb(), heapMb: mb - OUTSIDE_HEAP_MB }));
  private readonly office = new ChildPool<OfficeRequest, OfficeReply>('officeChild.js', () => Infinity, DOCUMENTS_PER_CHILD, (mb) => ({ capMb: mb + runtimeReservationMb(), heapMb: mb - OUTSIDE_HEAP_MB }));
  private readonly ocrPool = new OcrPool();
  private closed = false;

  /** The document's text; of a mail, its body document's (the attachments are documents of their own: readMail). */
  async extract(bytes: Uint8Array, limits: TextLimits, onOcr?: OcrProgress): Promise<ExtractedText> {
    return (await this.read(bytes, limits, onOcr)).text;
  }

  /**
   * A mail's parts: headers, body and attachments (at most limits.maxAttachments, the rest
   * counted), and its body as the text extract() gives. UNSUPPORTED_FORMAT when the bytes are no mail.
   */
  async readMail(bytes: Uint8Array, limits: TextLimits): Promise<{ text: ExtractedText; mail: MailParts }> {
    const { text, mail } = await this.read(bytes, limits);
    if (!mail) throw new DocsiftError('UNSUPPORTED_FORMAT', `the bytes are ${text.format}, not an e-mail`);
    return { text, mail };
  }

  private async read(bytes: Uint8Array, limits: TextLimits, onOcr?: OcrProgress): Promise<{ text: ExtractedText; mail?: MailParts }> {
    if (this.closed) throw new DocsiftError('INTERNAL', 'the text extractor is closed');
    if (bytes.length > limits.maxBytes) {
      throw new DocsiftError('TOO_LARGE', `the document has ${bytes.length} bytes; the queue allows ${limits.maxBytes} (limits.maxBytes)`);
    }
    const format = detectFormat(bytes);
    const warnings: string[] = [];
    let read: { pages: string[]; sources: Array<'text' | 'ocr'>; readings: OcrReading[]; mail?: MailParts };
    if (format === 'pdf') {
      read = await this.extractPdf(bytes, limits, warnings, onOcr);
    } else if (format === 'image') {
      read = await this.extractImage(bytes, limits, warnings, onOcr);
    } else if (format === 'docx' || format === 'xlsx' || format === 'html' || format === 'csv' || isMail(format)) {
      read = await this.extractOffice(bytes, format, limits, warnings);
    } else {
      const pages = decodeText(bytes, warnings).split('\f');
      if (pages.length > limits.maxPages) {
        throw new DocsiftError('TOO_LARGE', `the text has ${pages.length} pages (form feeds); the queue allows ${limits.maxPages}`);
      }
      read = { pages, sources: pages.map(() => 'text'), readings: [] };
    }
    const { pages, sources, readings, mail } = read;
    const chars = pages.reduce((n, p) => n + p.length, 0);
    // A mail's body page holds its headers; a mail with an empty body still has its attachments.
    if (!mail && pages.every((p) => p.trim() === '')) {
      throw new DocsiftError('EMPTY_TEXT', format !== 'pdf' && format !== 'image'
        ? 'the document holds no text'
        : !limits.ocr.enabled
          ? `the ${format === 'pdf' ? 'PDF' : 'image'} has ${pages.length} page(s) but no text layer, and OCR is off for this queue (ocr.enabled)`
          : `the ${format === 'pdf' ? 'PDF' : 'image'} has ${pages.length} page(s) and OCR found no text on them`);
    }
    const ocrPages = sources.flatMap((s, i) => (s === 'ocr' ? [i + 1] : []));
    const ocr = ocrPages.length ? { pages: ocrPages, meanConfidence: Math.round(readings.reduce((a, r) => a + r.confidence, 0) / readings.length), engine: readings[0]!.engine } : null;
    return { text: { format, pages, sources, ocr, chars, warnings }, ...(mail ? { mail } : {}) };
  }

  private async extractPdf(bytes: Uint8Array, limits: TextLimits, warnings: string[], onOcr?: OcrProgress) {
    const ocr = limits.ocr;
    const render = ocr.enabled ? { dpi: ocr.dpi, minChars: ocr.minCharsPerPage, maxPages: ocr.maxPages } : undefined;
    const reply = await this.pdf.run({ bytes, maxPages: limits.maxPages, engine: limits.pdfEngine, ...(render ? { render } : {}) }, {
      timeoutMs: limits.timeoutMs,
      memoryMb: limits.memoryMb,
      // A parser that ran into its memory cap is not trusted with another document.
      keep: (r) => r.ok || r.code !== 'TOO_LARGE',
    });
    if (isFailure(reply)) throw parserFailure(reply, 'PDF', limits);
    if (!reply.ok) throw new DocsiftError(reply.code, reply.message);
    const pages = [...reply.pages];
    const sources: Array<'text' | 'ocr'> = pages.map(() => 'text');
    if (reply.unrendered > 0) warnings.push(`OCR_PAGES_SKIPPED: ${reply.unrendered} page(s) without a text layer beyond ocr.maxPages (${ocr.maxPages}) were not read`);
    const readings = await this.ocrAll(reply.images.map((i) => ({ image: i.png, page: i.page - 1 })), limits, warnings, onOcr, (page, result) => {
      pages[page] = result.text;
      sources[page] = 'ocr';
    });
    return { pages, sources, readings };
  }

  private async extractOffice(bytes: Uint8Array, format: OfficeFormat, limits: TextLimits, warnings: string[]) {
    const reply = await this.office.run({ bytes, format, maxRows: limits.maxRows, maxAttachments: limits.maxAttachments }, { timeoutMs: limits.timeoutMs, memoryMb: limits.memoryMb, keep: (r) => r.ok });
    if (isFailure(reply)) throw parserFailure(reply, format === 'eml' ? 'e-mail' : format === 'msg' ? 'Outlook item' : format.toUpperCase(), limits);
    if (!reply.ok) throw new DocsiftError(reply.code, reply.message);
    warnings.push(...reply.warnings);
    if (reply.pages.length > limits.maxPages) throw new DocsiftError('TOO_LARGE', `the workbook has ${reply.pages.length} sheets; the queue allows ${limits.maxPages} pages (limits.maxPages)`);
    if (reply.mail?.dropped) warnings.push(`ATTACHMENTS_CUT: the mail has ${reply.mail.attachments.length + reply.mail.dropped} attachments; the first ${limits.maxAttachments} were read (limits.maxAttachments)`);
    return { pages: reply.pages, sources: reply.pages.map(() => 'text' as const), readings: [], ...(reply.mail ? { mail: reply.mail } : {}) };
  }

  private async extractImage(bytes: Uint8Array, limits: TextLimits, warnings: string[], onOcr?: OcrProgress) {
    if (!limits.ocr.enabled) throw new DocsiftError('UNSUPPORTED_FORMAT', 'the bytes are an image, and OCR is off for this queue (ocr.enabled)');
    const sizes = imagePages(bytes, imageKind(bytes)!, Math.min(limits.maxPages, limits.ocr.maxPages));
    const pages = sizes.map(() => '');
    const readings = await this.ocrAll(sizes.map((_, page) => ({ image: bytes, page })), limits, warnings, onOcr, (page, result) => {
      pages[page] = result.text;
    });
    return { pages, sources: pages.map(() => 'ocr' as const), readings };
  }

  /** Every page through the OCR pool, as many at once as it has workers; readings in page order. */
  private async ocrAll(jobs: Array<{ image: Uint8Array; page: number }>, limits: TextLimits, warnings: string[], onOcr: OcrProgress | undefined, done: (page: number, result: { text: string }) => void): Promise<OcrReading[]> {
    let finished = 0;
    const results = await Promise.all(jobs.map(async (job) => {
      const result = await this.ocrPool.recognise(job.image, job.page, limits.ocr);
      if (result.rotation) warnings.push(`OCR_ROTATED: page ${job.page + 1} was read turned ${result.rotation}° clockwise`);
      done(job.page, result);
      onOcr?.(++finished, jobs.length);
      return { confidence: result.confidence, engine: result.engine };
    }));
    return results;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.pdf.close(), this.office.close(), this.ocrPool.close()]);
  }
}

/** A parser process that did not answer: past the time limit, past the memory cap, or dead. */
function parserFailure(failure: ChildFailure, what: string, limits: TextLimits): DocsiftError {
  if (failure.kind === 'timeout') return new DocsiftError('EXTRACTION_TIMEOUT', `text extraction took longer than ${limits.timeoutMs} ms (limits.textTimeoutMs)`);
  if (failure.outOfMemory) return new DocsiftError('TOO_LARGE', `parsing the ${what} needed more than ${limits.memoryMb} MB (limits.textMemoryMb)`);
  return new DocsiftError('CORRUPT_DOCUMENT', `the ${what} parser exited (code ${failure.code}, signal ${failure.signal}) on this document`);
}

/** Text that needs no extraction (tests, the bench, callers that hold text already). */
export function plainText(pages: string[]): ExtractedText {
  return { format: 'text', pages, sources: pages.map(() => 'text'), ocr: null, chars: pages.reduce((n, p) => n + p.length, 0), warnings: [] };
}
