import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { PDFParse } from 'pdf-parse';
import UTIF from 'utif2';

/**
 * Scans made from the shared corpus, as a scanner or a phone would: the page rendered, turned a
 * little, speckled with noise and JPEG-compressed. Nothing is committed; each test makes its own.
 */
export async function renderPage(pdf: string, page: number, dpi: number): Promise<Buffer> {
  const parser = new PDFParse({ data: new Uint8Array(fs.readFileSync(pdf)) });
  try {
    const shot = await parser.getScreenshot({ partial: [page], scale: dpi / 72, imageBuffer: true, imageDataUrl: false });
    return Buffer.from(shot.pages[0]!.data);
  } finally {
    await parser.destroy();
  }
}

/** Deterministic noise, so a failing test fails the same way again. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Degrade { degrees?: number; noise?: number; quality?: number; seed?: number }

/** Rotated by `degrees` on a white ground, `noise` of the pixels speckled, then JPEG at `quality`. */
export async function scan(png: Buffer, options: Degrade = {}): Promise<Buffer> {
  const image = await loadImage(png);
  const swap = Math.abs(options.degrees ?? 0) % 180 === 90;
  const canvas = createCanvas(swap ? image.height : image.width, swap ? image.width : image.height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.translate(canvas.width / 2, canvas.height / 2);
  ctx.rotate(((options.degrees ?? 0) * Math.PI) / 180);
  ctx.drawImage(image, -image.width / 2, -image.height / 2);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  if (options.noise) {
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const rand = random(options.seed ?? 7);
    for (let i = 0; i < data.data.length; i += 4) {
      if (rand() < options.noise) {
        const v = rand() < 0.5 ? 0 : 255;
        data.data[i] = data.data[i + 1] = data.data[i + 2] = v;
      }
    }
    ctx.putImageData(data, 0, 0);
  }
  return canvas.toBuffer('image/jpeg', options.quality ?? 75);
}

/** A multi-page TIFF (uncompressed RGBA, one strip per page) of the given images. */
export async function tiff(images: Buffer[]): Promise<Buffer> {
  const pages: Array<{ width: number; height: number; rgba: Buffer }> = [];
  for (const png of images) {
    const image = await loadImage(png);
    const canvas = createCanvas(image.width, image.height);
    canvas.getContext('2d').drawImage(image, 0, 0);
    const data = canvas.getContext('2d').getImageData(0, 0, image.width, image.height).data;
    pages.push({ width: image.width, height: image.height, rgba: Buffer.from(data.buffer, data.byteOffset, data.length) });
  }
  // UTIF.encode writes the directories; the pixel strips follow them at the offsets they name.
  const base = 4096 * pages.length;
  let offset = base;
  const ifds = pages.map((p) => {
    const ifd = { t256: [p.width], t257: [p.height], t258: [8, 8, 8, 8], t259: [1], t262: [2], t273: [offset], t277: [4], t278: [p.height], t279: [p.rgba.length], t284: [1], t338: [1] };
    offset += p.rgba.length;
    return ifd;
  });
  const head = Buffer.from(UTIF.encode(ifds as never));
  if (head.length > base) throw new Error('TIFF directories larger than expected');
  return Buffer.concat([head, Buffer.alloc(base - head.length), ...pages.map((p) => p.rgba)]);
}

/** A JPEG with an EXIF orientation tag, as phones save a photo taken sideways (6: turn 90° clockwise to view). */
export function withExifOrientation(jpeg: Buffer, orientation: number): Buffer {
  const tiffHeader = Buffer.from([0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8]);
  const ifd = Buffer.alloc(2 + 12 + 4);
  ifd.writeUInt16BE(1, 0);
  ifd.writeUInt16BE(0x0112, 2); // Orientation
  ifd.writeUInt16BE(3, 4); // SHORT
  ifd.writeUInt32BE(1, 6);
  ifd.writeUInt16BE(orientation, 10);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiffHeader, ifd]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1]), Buffer.alloc(2), payload]);
  app1.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), app1, jpeg.subarray(2)]);
}

/** The words poppler reads from the original PDF (the reference for OCR's recall). */
export function popplerWords(pdf: string, page?: number): string[] {
  const args = ['-layout', ...(page ? ['-f', String(page), '-l', String(page)] : []), pdf, '-'];
  return words(execFileSync('pdftotext', args).toString('utf8'));
}

export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Share of the reference words found in the OCR text, each occurrence counted once. */
export function recall(reference: string[], ocr: string): number {
  const have = new Map<string, number>();
  for (const w of words(ocr)) have.set(w, (have.get(w) ?? 0) + 1);
  let hit = 0;
  for (const w of reference) {
    const n = have.get(w) ?? 0;
    if (n > 0) {
      hit++;
      have.set(w, n - 1);
    }
  }
  return hit / reference.length;
}
