import UTIF from 'utif2';
import { DocsiftError } from '../infra/errors.js';

export type ImageKind = 'png' | 'jpeg' | 'tiff' | 'webp';

/** The image formats OCR reads, from their magic bytes. */
export function imageKind(bytes: Uint8Array): ImageKind | null {
  const at = (i: number, ...b: number[]) => b.every((x, j) => bytes[i + j] === x);
  if (at(0, 0x89, 0x50, 0x4e, 0x47)) return 'png';
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) return 'tiff';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  return null;
}

/** More than a 600 dpi A3 scan (7016 x 9921): decoding such an image is refused before it is decoded. */
export const MAX_PIXELS = 80_000_000;

/**
 * Width and height from the header alone, so a decompression bomb (a small file that decodes
 * to gigabytes) is refused before anything allocates its pixels. TIFF: every page.
 */
export function imagePages(bytes: Uint8Array, kind: ImageKind, maxPages: number): Array<{ width: number; height: number }> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let pages: Array<{ width: number; height: number }> = [];
  try {
    if (kind === 'png') pages = [{ width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }];
    else if (kind === 'jpeg') pages = [jpegSize(buf)];
    else if (kind === 'webp') pages = [webpSize(buf)];
    else {
      const ifds = UTIF.decode(buf).filter((ifd) => ifd['t256'] && ifd['t257']);
      if (ifds.length > maxPages) throw new DocsiftError('TOO_LARGE', `the TIFF has ${ifds.length} pages; the queue allows ${maxPages}`);
      pages = ifds.map((ifd) => ({ width: Number((ifd['t256'] as number[])[0]), height: Number((ifd['t257'] as number[])[0]) }));
    }
  } catch (err) {
    if (err instanceof DocsiftError) throw err;
    throw new DocsiftError('CORRUPT_DOCUMENT', `the ${kind.toUpperCase()} image cannot be read: ${(err as Error).message}`);
  }
  if (pages.length === 0 || pages.some((p) => !(p.width > 0 && p.height > 0))) throw new DocsiftError('CORRUPT_DOCUMENT', `the ${kind.toUpperCase()} image has no readable size`);
  const big = pages.find((p) => p.width * p.height > MAX_PIXELS);
  if (big) throw new DocsiftError('TOO_LARGE', `the image is ${big.width} x ${big.height} pixels; at most ${MAX_PIXELS / 1e6} megapixels are read`);
  return pages;
}

function jpegSize(buf: Buffer): { width: number; height: number } {
  let p = 2;
  while (p + 9 < buf.length) {
    if (buf[p] !== 0xff) throw new Error('bad marker');
    const marker = buf[p + 1]!;
    // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return { height: buf.readUInt16BE(p + 5), width: buf.readUInt16BE(p + 7) };
    p += 2 + buf.readUInt16BE(p + 2);
  }
  throw new Error('no frame header');
}

function webpSize(buf: Buffer): { width: number; height: number } {
  const chunk = buf.toString('latin1', 12, 16);
  if (chunk === 'VP8 ') return { width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
  if (chunk === 'VP8L') {
    const b = buf.readUInt32LE(21);
    return { width: (b & 0x3fff) + 1, height: ((b >> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') return { width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 };
  throw new Error(`unknown WebP chunk ${chunk}`);
}

/**
 * A JPEG's EXIF orientation (1: stored upright; phones save sideways photos with 6 or 8 instead
 * of turning the pixels), from its APP1 segment; 0 when the metadata cannot be read. Needed where
 * the decoder ignores the tag (leptonica); @napi-rs/canvas applies it itself.
 */
export function jpegOrientation(bytes: Uint8Array): number {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  try {
    for (let p = 2; buf[p] === 0xff && buf[p + 1] !== 0xda; p += 2 + buf.readUInt16BE(p + 2)) {
      if (buf[p + 1] !== 0xe1 || buf.toString('latin1', p + 4, p + 10) !== 'Exif\0\0') continue;
      const tiff = p + 10;
      const le = buf.toString('latin1', tiff, tiff + 2) === 'II';
      const u16 = (at: number) => (le ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
      const ifd = tiff + (le ? buf.readUInt32LE(tiff + 4) : buf.readUInt32BE(tiff + 4));
      for (let i = 0, n = u16(ifd); i < n; i++) if (u16(ifd + 2 + i * 12) === 0x0112) return u16(ifd + 2 + i * 12 + 8);
      return 1;
    }
    return 1;
  } catch {
    return 0; // out of bounds: a truncated or lying segment
  }
}
