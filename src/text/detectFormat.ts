import { DocsiftError } from '../infra/errors.js';
import { imageKind } from './images.js';
import { officeKind } from './zip.js';

export type DocumentFormat = 'pdf' | 'image' | 'docx' | 'xlsx' | 'html' | 'csv' | 'eml' | 'msg' | 'text' | 'markdown';

/** The format, or undefined for bytes no format fits (reading them fails with detectFormat's code). */
export function sniffFormat(bytes: Uint8Array): DocumentFormat | undefined {
  try {
    return detectFormat(bytes);
  } catch {
    return undefined;
  }
}

/** A mail is a container: its body and attachments are documents of their own (docs/FORMATS.md). */
export function isMail(format: string | undefined): format is 'eml' | 'msg' {
  return format === 'eml' || format === 'msg';
}

const SUPPORTED = 'PDF, image (PNG, JPEG, TIFF, WebP), DOCX, XLSX, HTML, CSV, e-mail (.eml, Outlook .msg), text or markdown';

const MAGIC: Array<[string, number[]]> = [
  ['GIF image (convert it to PNG)', [0x47, 0x49, 0x46, 0x38]],
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
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return officeKind(bytes);
  if (OLE2.every((b, i) => bytes[i] === b)) {
    // Outlook items keep their properties in streams named __substg1.0_<tag> (MS-OXMSG); DOC and XLS have none.
    if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).includes(MSG_STREAM)) return 'msg';
    throw new DocsiftError('UNSUPPORTED_FORMAT', `the bytes are an OLE2 file (DOC or XLS: save it as DOCX or XLSX); docsift reads ${SUPPORTED}`);
  }
  for (const [what, magic] of MAGIC) {
    if (magic.every((b, i) => bytes[i] === b)) throw new DocsiftError('UNSUPPORTED_FORMAT', `the bytes are a ${what}; docsift reads ${SUPPORTED}`);
  }
  const sample = bytes.subarray(0, 64 * 1024);
  let control = 0;
  for (const b of sample) {
    if (b === 0) throw new DocsiftError('UNSUPPORTED_FORMAT', `binary data (NUL bytes): not a ${SUPPORTED} document`);
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) control++;
  }
  if (control > sample.length * 0.05) throw new DocsiftError('UNSUPPORTED_FORMAT', `binary data: not a ${SUPPORTED} document`);
  const text = Buffer.from(sample).toString('utf8').replace(/^\uFEFF/, '');
  if (isMailHeader(text)) return 'eml';
  if (/^\s*(<!doctype html|<html[\s>]|<\?xml[^>]*>\s*<html)/i.test(text)) return 'html';
  if (isCsv(text)) return 'csv';
  if (/^#{1,6} \S/m.test(text) || /^\s*\|?\s*:?-{3,}:?\s*\|/m.test(text) || /\[[^\]]+\]\([^)]+\)/.test(text)) return 'markdown';
  return 'text';
}

const OLE2 = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
const MSG_STREAM = Buffer.from('__substg1.0_', 'utf16le');

/** Headers only a mail transport or MIME writes; From: alone, or with To/Subject, is also a memo. */
const MAIL_ONLY = ['message-id', 'mime-version', 'received', 'return-path', 'content-type', 'delivered-to', 'dkim-signature'];

/**
 * An RFC 5322 message: a block of header lines (name: value, or a folded continuation) ended by a
 * blank line, with From: and at least one header that only mail carries. A note that starts
 * "From: … Subject: …" stays text; a saved mail always has Message-ID or MIME-Version.
 */
function isMailHeader(text: string): boolean {
  const end = text.search(/\r?\n\r?\n/);
  if (end < 0) return false;
  const lines = text.slice(0, end).split(/\r?\n/);
  if (lines.length < 2 || !HEADER_LINE.test(lines[0]!)) return false;
  if (!lines.every((l) => HEADER_LINE.test(l) || /^[ \t]+\S/.test(l))) return false;
  const names = new Set(lines.filter((l) => HEADER_LINE.test(l)).map((l) => l.slice(0, l.indexOf(':')).toLowerCase()));
  return names.has('from') && MAIL_ONLY.some((n) => names.has(n));
}

const HEADER_LINE = /^[!-9;-~]+:/;

/**
 * Comma-, semicolon- or tab-separated values: at least three lines, and every one of the first
 * twenty has the same number (one or more) of the same separator outside quotes. Plain text
 * rarely keeps a count that exact; a spreadsheet export always does.
 */
function isCsv(text: string): boolean {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '').slice(0, 20);
  if (lines.length < 3) return false;
  return [',', ';', '\t'].some((sep) => {
    const counts = lines.map((l) => separators(l, sep));
    return counts[0]! > 0 && counts.every((c) => c === counts[0]);
  });
}

function separators(line: string, sep: string): number {
  let n = 0;
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (ch === sep && !quoted) n++;
  }
  return n;
}
