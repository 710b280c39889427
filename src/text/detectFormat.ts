import { DocsiftError } from '../infra/errors.js';
import { imageKind } from './images.js';

export type DocumentFormat = 'pdf' | 'text' | 'markdown' | 'image';

const MAGIC: Array<[string, number[]]> = [
  ['GIF image (convert it to PNG)', [0x47, 0x49, 0x46, 0x38]],
  ['ZIP archive (DOCX, XLSX, ODT and similar are not supported yet)', [0x50, 0x4b, 0x03, 0x04]],
  ['OLE2 file (DOC, XLS, MSG are not supported yet)', [0xd0, 0xcf, 0x11, 0xe0]],
  ['gzip archive', [0x1f, 0x8b]],
  ['RAR archive', [0x52, 0x61, 0x72, 0x21]],
  ['7-Zip archive', [0x37, 0x7a, 0xbc, 0xaf]],
];

/**
 * The format comes from the bytes, never from the file name: a .pdf that holds HTML is text,
 * and a scan saved as .txt is read as the image it is. Throws the coded error for what cannot be read.
 */
export function detectFormat(bytes: Uint8Array): DocumentFormat {
  if (bytes.length === 0) throw new DocsiftError('EMPTY_TEXT', 'the document is empty (0 bytes)');
  // The PDF header may follow some junk; readers accept it within the first 1 KiB.
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 1024)).toString('latin1');
  if (head.includes('%PDF-')) return 'pdf';
  if (imageKind(bytes)) return 'image';
  for (const [what, magic] of MAGIC) {
    if (magic.every((b, i) => bytes[i] === b)) throw new DocsiftError('UNSUPPORTED_FORMAT', `the bytes are a ${what}`);
  }
  const sample = bytes.subarray(0, 64 * 1024);
  let control = 0;
  for (const b of sample) {
    if (b === 0) throw new DocsiftError('UNSUPPORTED_FORMAT', 'binary data (NUL bytes): not a PDF, image (PNG, JPEG, TIFF, WebP), text or markdown document');
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) control++;
  }
  if (control > sample.length * 0.05) throw new DocsiftError('UNSUPPORTED_FORMAT', 'binary data: not a PDF, image (PNG, JPEG, TIFF, WebP), text or markdown document');
  const text = Buffer.from(sample).toString('utf8');
  if (/^#{1,6} \S/m.test(text) || /^\s*\|?\s*:?-{3,}:?\s*\|/m.test(text) || /\[[^\]]+\]\([^)]+\)/.test(text)) return 'markdown';
  return 'text';
}
