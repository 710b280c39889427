/**
 * poppler's C interface (Debian's libpoppler-glib8: the library `pdftotext` runs), called
 * in-process through koffi. Only PDF child processes call it (pdfChild.ts): they run under the
 * OS memory cap and are killed past the time limit, so a fault in the parser ends a document.
 *
 * Why it exists beside pdf.js: on the invoice corpus a process reads ~130 pages/s with it and ~11
 * with pdf.js, whose time goes to translating embedded fonts (2 cores; docs/BENCHMARKS.md); and it
 * renders a scanned page for OCR (through cairo, its drawing library) with its grey PNG in ~0.3 s
 * at 300 dpi, where pdf.js's render and RGBA PNG take ~1.1 s (the page read: 1.2 s against 2.0).
 */
import zlib from 'node:zlib';
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
  pageSize(page: Pointer, width: number[], height: number[]): void;
  render(page: Pointer, cr: Pointer): void;
  surface(format: number, width: number, height: number): Pointer;
  surfaceStatus(surface: Pointer): number;
  surfaceFlush(surface: Pointer): void;
  surfaceData(surface: Pointer): Pointer;
  surfaceStride(surface: Pointer): number;
  surfaceDestroy(surface: Pointer): void;
  context(surface: Pointer): Pointer;
  scale(cr: Pointer, sx: number, sy: number): void;
  sourceRgb(cr: Pointer, r: number, g: number, b: number): void;
  paint(cr: Pointer): void;
  contextDestroy(cr: Pointer): void;
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
  const cairo = koffi.load(files.cairo);
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
    pageSize: poppler.func('void poppler_page_get_size(void *page, _Out_ double *width, _Out_ double *height)'),
    render: poppler.func('void poppler_page_render(void *page, void *cr)'),
    surface: cairo.func('void *cairo_image_surface_create(int format, int width, int height)'),
    surfaceStatus: cairo.func('int cairo_surface_status(void *surface)'),
    surfaceFlush: cairo.func('void cairo_surface_flush(void *surface)'),
    surfaceData: cairo.func('void *cairo_image_surface_get_data(void *surface)'),
    surfaceStride: cairo.func('int cairo_image_surface_get_stride(void *surface)'),
    surfaceDestroy: cairo.func('void cairo_surface_destroy(void *surface)'),
    context: cairo.func('void *cairo_create(void *surface)'),
    scale: cairo.func('void cairo_scale(void *cr, double sx, double sy)'),
    sourceRgb: cairo.func('void cairo_set_source_rgb(void *cr, double r, double g, double b)'),
    paint: cairo.func('void cairo_paint(void *cr)'),
    contextDestroy: cairo.func('void cairo_destroy(void *cr)'),
  };
  return bindings;
}

/** cairo's CAIRO_FORMAT_RGB24: 32 bits a pixel, B G R and an unused byte in memory on little-endian machines. */
const CAIRO_FORMAT_RGB24 = 1;
/** cairo's largest image side. */
const CAIRO_MAX_SIDE = 32_767;

export class PopplerError extends Error {
  constructor(readonly kind: 'encrypted' | 'damaged' | 'too large', message: string) {
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
      throw new PopplerError(code === POPPLER_ERROR_ENCRYPTED ? 'encrypted' : 'damaged', message);
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

  /**
   * Page `index` (0-based) rendered on white at `dpi`, as an 8-bit grey PNG: what OCR reads
   * (grey anyway), a quarter of the pixels of an RGBA PNG to compress, at zlib's fastest level.
   */
  renderGreyPng(index: number, dpi: number): Uint8Array {
    const page = this.lib.page(this.doc, index);
    if (!page) throw new PopplerError('damaged', `page ${index + 1} cannot be read`);
    try {
      const w = [0];
      const h = [0];
      this.lib.pageSize(page, w, h);
      const scale = dpi / 72;
      const width = Math.floor(w[0]! * scale);
      const height = Math.floor(h[0]! * scale);
      if (!(width > 0 && height > 0) || width > CAIRO_MAX_SIDE || height > CAIRO_MAX_SIDE) {
        throw new PopplerError('too large', `page ${index + 1} is ${Math.round(w[0]!)} x ${Math.round(h[0]!)} pt: ${width} x ${height} pixels at ${dpi} dpi`);
      }
      const surface = this.lib.surface(CAIRO_FORMAT_RGB24, width, height);
      try {
        // Under the OS memory cap cairo returns a surface in an error state rather than none.
        if (this.lib.surfaceStatus(surface) !== 0) throw new PopplerError('too large', `out of memory: page ${index + 1} renders to ${width} x ${height} pixels`);
        const cr = this.lib.context(surface);
        try {
          this.lib.sourceRgb(cr, 1, 1, 1);
          this.lib.paint(cr);
          this.lib.scale(cr, scale, scale);
          this.lib.render(page, cr);
        } finally {
          this.lib.contextDestroy(cr);
        }
        this.lib.surfaceFlush(surface);
        const stride = this.lib.surfaceStride(surface);
        return greyPng(new Uint8Array(koffi.view(this.lib.surfaceData(surface), stride * height)), width, height, stride);
      } finally {
        this.lib.surfaceDestroy(surface);
      }
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
 * cairo's RGB24 rows (B, G, R, unused) as an 8-bit grey PNG, each row filtered "none": the OCR
 * process's decoder (leptonica, or the canvas for tesseract.js) reads it as a scan.
 */
function greyPng(bgrx: Uint8Array, width: number, height: number, stride: number): Uint8Array {
  const rows = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    let from = y * stride;
    let to = y * (width + 1) + 1; // the row's filter byte stays 0
    for (let x = 0; x < width; x++, from += 4) rows[to++] = (bgrx[from + 2]! * 77 + bgrx[from + 1]! * 150 + bgrx[from]! * 29) >> 8;
  }
  const chunk = (type: string, body: Buffer) => {
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const out = Buffer.alloc(typed.length + 8);
    out.writeUInt32BE(body.length, 0);
    typed.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(typed), typed.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per sample; colour type 0 (grey), deflate, no filter method, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(rows, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
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
