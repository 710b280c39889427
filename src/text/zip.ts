import { DocsiftError } from '../infra/errors.js';

/** An entry of a ZIP archive as its central directory describes it (nothing is inflated). */
export interface ZipEntry { name: string; compressed: number; size: number }

/** Bounds against zip bombs, checked on the central directory before any parser inflates a byte. */
export const ZIP_LIMITS = { entries: 10_000, totalBytes: 512 * 1024 * 1024, ratio: 200 } as const;

/**
 * The central directory of a ZIP file (the OOXML container of DOCX and XLSX). Refuses archives
 * with more than ZIP_LIMITS.entries entries, more than ZIP_LIMITS.totalBytes inflated, or an
 * entry that claims to inflate more than ZIP_LIMITS.ratio times (text XML inflates 5-20x; a
 * bomb 1,000x). The claims are checked here; what a parser really inflates is capped by the OS
 * in its child process, so a lying header ends TOO_LARGE there.
 */
export function zipEntries(bytes: Uint8Array): ZipEntry[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  // End of central directory: 22 bytes plus a comment of up to 65,535, at the end of the file.
  let eocd = -1;
  for (let p = buf.length - 22; p >= Math.max(0, buf.length - 22 - 65_535); p--) {
    if (buf.readUInt32LE(p) === 0x06054b50) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw new DocsiftError('CORRUPT_DOCUMENT', 'the ZIP container has no central directory (truncated?)');
  const count = buf.readUInt16LE(eocd + 10);
  const offset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || offset === 0xffffffff) throw new DocsiftError('UNSUPPORTED_FORMAT', 'a ZIP64 archive: office documents are not ZIP64');
  if (count > ZIP_LIMITS.entries) throw new DocsiftError('TOO_LARGE', `the ZIP container has ${count} entries; at most ${ZIP_LIMITS.entries} are read`);
  const entries: ZipEntry[] = [];
  let total = 0;
  let p = offset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw new DocsiftError('CORRUPT_DOCUMENT', 'the ZIP container\'s central directory is damaged');
    const compressed = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLength = buf.readUInt16LE(p + 28);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLength);
    total += size;
    if (size > 1_000_000 && size > compressed * ZIP_LIMITS.ratio) {
      throw new DocsiftError('TOO_LARGE', `the ZIP entry ${name} claims to inflate ${Math.round(size / Math.max(1, compressed))} times (a zip bomb?); at most ${ZIP_LIMITS.ratio} are read`);
    }
    if (total > ZIP_LIMITS.totalBytes) throw new DocsiftError('TOO_LARGE', `the ZIP container inflates to more than ${ZIP_LIMITS.totalBytes / 1024 / 1024} MB`);
    entries.push({ name, compressed, size });
    p += 46 + nameLength + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
  }
  return entries;
}

/** What an OOXML package is, from the parts it holds (never the file name). */
export function officeKind(bytes: Uint8Array): 'docx' | 'xlsx' {
  const names = new Set(zipEntries(bytes).map((e) => e.name));
  if (names.has('[Content_Types].xml') && names.has('word/document.xml')) return 'docx';
  if (names.has('[Content_Types].xml') && names.has('xl/workbook.xml')) return 'xlsx';
  if (names.has('content.xml') && names.has('mimetype')) throw new DocsiftError('UNSUPPORTED_FORMAT', 'an OpenDocument file (ODT, ODS): save it as DOCX or XLSX');
  throw new DocsiftError('UNSUPPORTED_FORMAT', 'a ZIP archive that is not a DOCX or XLSX document');
}
