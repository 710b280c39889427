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
  /** Which library reads the text layer and renders the pages OCR reads. */
  engine: PdfEngineName;
  /** Render the pages whose text layer is unusable (needsOcr) as PNG at this dpi, at most maxPages of them. */
  render?: { dpi: number; minChars: number; maxPages: number };
}

export type PdfReply =
  | { id: number; ok: true; pages: string[]; totalPages: number; images: Array<{ page: number; png: Uint8Array }>; unrendered: number }
  | { id: number; ok: false; code: 'ENCRYPTED' | 'CORRUPT_DOCUMENT' | 'TOO_LARGE'; message: string };

async function parse(request: PdfRequest): Promise<PdfReply> {
  let doc: OpenPdf | undefined;
  try {
    doc = request.engine === 'poppler' ? openWithPoppler(request.bytes) : openWithPdfjs(request.bytes);
    const { pages, total } = await doc.read(request.maxPages);
    if (total > request.maxPages) {
      return { id: request.id, ok: false, code: 'TOO_LARGE', message: `the PDF has ${total} pages; the queue allows ${request.maxPages}` };
    }
    const wanted = request.render ? pages.flatMap((text, i) => (needsOcr(text, request.render!.minChars) ? [i + 1] : [])) : [];
    const partial = wanted.slice(0, request.render?.maxPages ?? 0);
    const images = partial.length === 0 ? [] : await doc.render(partial, request.render!.dpi);
    return { id: request.id, ok: true, pages, totalPages: total, images, unrendered: wanted.length - partial.length };
  } catch (err) {
    const name = (err as Error)?.name ?? '';
    const message = (err as Error)?.message ?? String(err);
    if (name === 'PasswordException' || (err instanceof PopplerError && err.kind === 'encrypted')) return { id: request.id, ok: false, code: 'ENCRYPTED', message: `the PDF is password-protected (${message})` };
    if (err instanceof PopplerError && err.kind === 'too large') return { id: request.id, ok: false, code: 'TOO_LARGE', message: `a page cannot be rendered for OCR: ${message}` };
    // The OS memory cap (RLIMIT_DATA, set by the parent) refused an allocation pdf.js asked for,
    // or the canvas a page renders on ("Create skia surface failed": a 200-inch page at 300 dpi).
    if (/allocation failed|out of memory|skia surface/i.test(message)) return { id: request.id, ok: false, code: 'TOO_LARGE', message: `parsing the PDF needed more memory than the parser may use (limits.textMemoryMb): ${message}` };
    return { id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: `the PDF cannot be parsed: ${message}` };
  } finally {
    await doc?.close();
  }
}

/** A PDF open in one engine: its pages' text, then the pages OCR needs as PNG. */
interface OpenPdf {
  read(maxPages: number): Promise<{ pages: string[]; total: number }>;
  render(pages: number[], dpi: number): Promise<Array<{ page: number; png: Uint8Array }>>;
  close(): Promise<void>;
}

/** pdf.js through pdf-parse, which parses at most maxPages: a 2,000-page file is refused without reading all of it. */
function openWithPdfjs(bytes: Uint8Array): OpenPdf {
  const parser = new PDFParse({ data: bytes, verbosity: VerbosityLevel.ERRORS });
  return {
    async read(maxPages) {
      const result = await parser.getText({ first: maxPages });
      return { pages: result.pages.map((p) => p.text), total: result.total };
    },
    async render(partial, dpi) {
      const shot = await parser.getScreenshot({ partial, scale: dpi / 72, imageBuffer: true, imageDataUrl: false });
      return shot.pages.map((p) => ({ page: p.pageNumber, png: p.data }));
    },
    close: () => parser.destroy().catch(() => undefined),
  };
}

/** poppler: the page count comes first, so a file over maxPages has none of its pages read. */
function openWithPoppler(bytes: Uint8Array): OpenPdf {
  const doc = new PopplerDocument(bytes);
  return {
    async read(maxPages) {
      const total = doc.pageCount;
      return { pages: total > maxPages ? [] : Array.from({ length: total }, (_, i) => doc.pageText(i)), total };
    },
    async render(partial, dpi) {
      return partial.map((page) => ({ page, png: doc.renderGreyPng(page - 1, dpi) }));
    },
    close: async () => doc.close(),
  };
}

process.on('message', (request: PdfRequest) => {
  parse(request).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: String(err) } satisfies PdfReply),
  );
});
// The parent going away must not leave a parser running.
process.on('disconnect', () => process.exit(0));
