/**
 * poppler's C interface (Debian's libpoppler-glib8: the library `pdftotext` runs), called
 * in-process through koffi. Only PDF child processes call it (pdfChild.ts): they run under the
 * OS memory cap and are killed past the time limit, so a fault in the parser ends a document.
 *
 * Why it exists beside pdf.js: on the invoice corpus a process reads ~130 pages/s with it and ~11
 * with pdf.js, whose time goes to translating embedded fonts (2 cores; docs/BENCHMARKS.md).
 */
import koffi from 'koffi';
import { libraryMissing, NATIVE_LIBRARIES } from '../config/nativeLibraries.js';

type Pointer = unknown;

/** poppler's PopplerError codes (poppler-document.h). */
const POPPLER_ERROR_ENCRYPTED = 1;

interface Bindings {
  bytesNew(data: Uint8Array, size: number): Pointer;
  bytesUnref(bytes: Pointer): void;
  free(p: Pointer): void;
  errorFree(e: Pointer): void;
  unref(o: Pointer): void;
  open(bytes: Pointer, password: string | null, error: Pointer[]): Pointer | null;
  pageCount(doc: Pointer): number;
  page(doc: Pointer, index: number): Pointer | null;
  text(page: Pointer): Pointer | null;
  layout(page: Pointer, rects: Pointer[], count: number[]): boolean;
  decodeError(e: Pointer): { code: number; message: string };
}

let bindings: Bindings | null = null;

function load(): Bindings {
  const missing = libraryMissing('poppler');
  if (missing) throw new Error(`poppler cannot be loaded: ${missing}`);
  if (bindings) return bindings;
  const { files } = NATIVE_LIBRARIES.poppler;
  const glib = koffi.load(files.glib);
  const gobject = koffi.load(files.gobject);
  const poppler = koffi.load(files.poppler);
  const GError = koffi.struct('GError', { domain: 'uint32', code: 'int', message: 'char *' });
  bindings = {
    bytesNew: glib.func('void *g_bytes_new(const uint8_t *data, size_t size)'),
    bytesUnref: glib.func('void g_bytes_unref(void *bytes)'),
    free: glib.func('void g_free(void *p)'),
    errorFree: glib.func('void g_error_free(void *error)'),
    unref: gobject.func('void g_object_unref(void *object)'),
    open: poppler.func('void *poppler_document_new_from_bytes(void *bytes, const char *password, _Out_ void **error)'),
    pageCount: poppler.func('int poppler_document_get_n_pages(void *doc)'),
    page: poppler.func('void *poppler_document_get_page(void *doc, int index)'),
    text: poppler.func('void *poppler_page_get_text(void *page)'),
    layout: poppler.func('bool poppler_page_get_text_layout(void *page, _Out_ void **rects, _Out_ uint32_t *count)'),
    decodeError: (e) => koffi.decode(e, GError) as { code: number; message: string },
  };
  return bindings;
}

export class PopplerError extends Error {
  constructor(readonly encrypted: boolean, message: string) {
    super(message);
  }
}

/** An open PDF: its page count, then each page's text, then close(). */
export class PopplerDocument {
  private readonly lib = load();
  private doc: Pointer | null;
  readonly pageCount: number;

  constructor(data: Uint8Array) {
    const bytes = this.lib.bytesNew(data, data.length);
    const error: Pointer[] = [null];
    this.doc = this.lib.open(bytes, null, error);
    this.lib.bytesUnref(bytes);
    if (!this.doc) {
      const { code, message } = error[0] ? this.lib.decodeError(error[0]) : { code: -1, message: 'unknown error' };
      if (error[0]) this.lib.errorFree(error[0]);
      throw new PopplerError(code === POPPLER_ERROR_ENCRYPTED, message);
    }
    this.pageCount = this.lib.pageCount(this.doc);
  }

  /** Page `index` (0-based) as lines of text, words apart where the page leaves a gap. */
  pageText(index: number): string {
    const page = this.lib.page(this.doc, index);
    if (!page) return '';
    try {
      const raw = this.lib.text(page);
      if (!raw) return '';
      const text = koffi.decode(raw, 'char', -1) as string;
      this.lib.free(raw);
      const rects: Pointer[] = [null];
      const count = [0];
      if (!this.lib.layout(page, rects, count) || !rects[0]) return text;
      // One rectangle (x1, y1, x2, y2: four doubles) per character of the text, newlines included.
      const boxes = new Float64Array(koffi.view(rects[0], count[0]! * 32).slice(0));
      this.lib.free(rects[0]);
      return spaceWords(text, boxes);
    } finally {
      this.lib.unref(page);
    }
  }

  close(): void {
    if (this.doc) this.lib.unref(this.doc);
    this.doc = null;
  }
}

/**
 * poppler's page text joins words of neighbouring cells ("AantalPrijs per stuk", "1€ 399,00"):
 * where the gap between two characters of a line is wider than a quarter of their height, a space
 * goes in, and a tab where it is wider than one and a half (a column), as pdf.js's text reads.
 */
export function spaceWords(text: string, boxes: Float64Array): string {
  const chars = [...text];
  if (chars.length * 4 !== boxes.length) return text;
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const prev = chars[i - 1];
    if (prev !== undefined && !/\s/.test(c) && !/\s/.test(prev)) {
      const a = (i - 1) * 4;
      const b = i * 4;
      // At least 4 pt: a font with empty glyph boxes would otherwise split words on rounding noise.
      const height = Math.max(boxes[a + 3]! - boxes[a + 1]!, boxes[b + 3]! - boxes[b + 1]!, 4);
      const gap = boxes[b]! - boxes[a + 2]!;
      if (gap > 1.5 * height) out += '\t';
      else if (gap > 0.25 * height) out += ' ';
    }
    out += c;
  }
  return out;
}
