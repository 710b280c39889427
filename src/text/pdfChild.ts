/**
 * Child process that parses PDFs with pdf-parse (pdf.js) or poppler (poppler.ts). It runs
 * outside the worker because parsing blocks its event loop for seconds to minutes (BullMQ renews
 * job locks from that loop) and because a hostile PDF can exhaust memory: the parent starts it
 * under an OS memory cap (RLIMIT_DATA) and a V8 heap cap, and kills it on timeout. One request
 * at a time; the parent reuses it for many documents.
 */
import { PDFParse, VerbosityLevel } from 'pdf-parse';
import { needsOcr } from './ocr.js';
import { PopplerDocument, PopplerError } from './poppler.js';

export type PdfEngineName = 'pdf.js' | 'poppler';

export interface PdfRequest {
  id: number;
  bytes: Uint8Array;
  maxPages: number;
  /** Which library reads the text layer (pages rendered for OCR always go through pdf.js). */
  engine: PdfEngineName;
  /** Render the pages whose text layer is unusable (needsOcr) as PNG at this dpi, at most maxPages of them. */
  render?: { dpi: number; minChars: number; maxPages: number };
}

export type PdfReply =
  | { id: number; ok: true; pages: string[]; totalPages: number; images: Array<{ page: number; png: Uint8Array }>; unrendered: number }
  | { id: number; ok: false; code: 'ENCRYPTED' | 'CORRUPT_DOCUMENT' | 'TOO_LARGE'; message: string };

async function parse(request: PdfRequest): Promise<PdfReply> {
  // pdf.js is started only when it has work: every page with pdf.js, OCR renders with poppler.
  let parser: PDFParse | undefined;
  const pdfjs = () => (parser ??= new PDFParse({ data: request.bytes, verbosity: VerbosityLevel.ERRORS }));
  try {
    const { pages, total } = request.engine === 'poppler' ? readWithPoppler(request) : await readWithPdfjs(pdfjs(), request);
    if (total > request.maxPages) {
      return { id: request.id, ok: false, code: 'TOO_LARGE', message: `the PDF has ${total} pages; the queue allows ${request.maxPages}` };
    }
    const wanted = request.render ? pages.flatMap((text, i) => (needsOcr(text, request.render!.minChars) ? [i + 1] : [])) : [];
    const partial = wanted.slice(0, request.render?.maxPages ?? 0);
    const images = partial.length === 0 ? [] : (await pdfjs().getScreenshot({ partial, scale: request.render!.dpi / 72, imageBuffer: true, imageDataUrl: false })).pages
      .map((p) => ({ page: p.pageNumber, png: p.data }));
    return { id: request.id, ok: true, pages, totalPages: total, images, unrendered: wanted.length - partial.length };
  } catch (err) {
    const name = (err as Error)?.name ?? '';
    const message = (err as Error)?.message ?? String(err);
    if (name === 'PasswordException' || (err instanceof PopplerError && err.encrypted)) return { id: request.id, ok: false, code: 'ENCRYPTED', message: `the PDF is password-protected (${message})` };
    // The OS memory cap (RLIMIT_DATA, set by the parent) refused an allocation pdf.js asked for.
    if (/allocation failed|out of memory/i.test(message)) return { id: request.id, ok: false, code: 'TOO_LARGE', message: `parsing the PDF needed more memory than the parser may use (limits.textMemoryMb): ${message}` };
    return { id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: `the PDF cannot be parsed: ${message}` };
  } finally {
    await parser?.destroy().catch(() => undefined);
  }
}

/** Parses at most maxPages: a 2,000-page file is refused without reading all of it. */
async function readWithPdfjs(parser: PDFParse, request: PdfRequest): Promise<{ pages: string[]; total: number }> {
  const result = await parser.getText({ first: request.maxPages });
  return { pages: result.pages.map((p) => p.text), total: result.total };
}

/** The page count comes first: a file over maxPages has none of its pages read. */
function readWithPoppler(request: PdfRequest): { pages: string[]; total: number } {
  const doc = new PopplerDocument(request.bytes);
  try {
    const total = doc.pageCount;
    const pages = total > request.maxPages ? [] : Array.from({ length: total }, (_, i) => doc.pageText(i));
    return { pages, total };
  } finally {
    doc.close();
  }
}

process.on('message', (request: PdfRequest) => {
  parse(request).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: String(err) } satisfies PdfReply),
  );
});
// The parent going away must not leave a parser running.
process.on('disconnect', () => process.exit(0));
