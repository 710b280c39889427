/**
 * Child process that reads page images with tesseract.js (WebAssembly). It runs outside the
 * worker because recognition holds a core for seconds per page and because a hostile image can
 * exhaust memory: the parent starts it under an OS memory cap and kills it on timeout. The
 * language data comes from the @tesseract.js-data packages in node_modules; nothing is
 * downloaded and nothing is written outside a temporary folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCanvas, loadImage, type Canvas } from '@napi-rs/canvas';
import { createWorker, type Worker } from 'tesseract.js';
import UTIF from 'utif2';
import { imageKind } from './images.js';

export interface OcrRequest {
  id: number;
  image: Uint8Array;
  /** For a TIFF: which page. */
  page: number;
  /** Language codes and their traineddata.gz files (from the @tesseract.js-data packages). */
  languages: Array<{ code: string; file: string }>;
}

export type OcrReply =
  | { id: number; ok: true; text: string; confidence: number; rotation: number; width: number; height: number }
  | { id: number; ok: false; code: 'CORRUPT_DOCUMENT' | 'OCR_FAILED' | 'TOO_LARGE'; message: string };

/** Below this mean word confidence at 0°, the page is tried at 90°, 180° and 270° too. */
const UPRIGHT_CONFIDENCE = 60;
/** Longer sides are scaled down: more pixels cost time without adding words at invoice print sizes. */
const MAX_SIDE = 5000;

let worker: { key: string; worker: Worker; dir: string } | null = null;

async function tesseract(languages: OcrRequest['languages']): Promise<Worker> {
  const key = languages.map((l) => l.code).join('+');
  if (worker?.key === key) return worker.worker;
  if (worker) {
    await worker.worker.terminate();
    fs.rmSync(worker.dir, { recursive: true, force: true });
  }
  // tesseract.js reads <langPath>/<code>.traineddata.gz; each language is its own package.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-ocr-'));
  for (const l of languages) fs.symlinkSync(l.file, path.join(dir, `${l.code}.traineddata.gz`));
  const w = await createWorker(key, 1 /* LSTM */, { langPath: dir, gzip: true, cacheMethod: 'none' });
  worker = { key, worker: w, dir };
  return w;
}

/**
 * Decodes the page and scales it to at most MAX_SIDE. A JPEG's EXIF orientation (phones save
 * sideways photos with a tag instead of turning the pixels) is applied by the decoder: measured,
 * @napi-rs/canvas's loadImage returns a tag-6 550 x 425 JPEG as 425 x 550, upright.
 */
async function decode(request: OcrRequest): Promise<Canvas> {
  if (imageKind(request.image) === 'tiff') {
    const buf = Buffer.from(request.image.buffer, request.image.byteOffset, request.image.length);
    const ifd = UTIF.decode(buf).filter((i) => i['t256'] && i['t257'])[request.page];
    if (!ifd) throw new Error(`no page ${request.page + 1}`);
    UTIF.decodeImage(buf, ifd);
    const rgba = UTIF.toRGBA8(ifd);
    const canvas = createCanvas(ifd.width, ifd.height);
    const ctx = canvas.getContext('2d');
    const data = ctx.createImageData(ifd.width, ifd.height);
    data.data.set(rgba);
    ctx.putImageData(data, 0, 0);
    return scaled(canvas);
  }
  const image = await loadImage(Buffer.from(request.image.buffer, request.image.byteOffset, request.image.length));
  const source = createCanvas(image.width, image.height);
  source.getContext('2d').drawImage(image, 0, 0);
  return scaled(source);
}

function scaled(source: Canvas): Canvas {
  const scale = Math.min(1, MAX_SIDE / Math.max(source.width, source.height));
  if (scale === 1) return source;
  const out = createCanvas(Math.round(source.width * scale), Math.round(source.height * scale));
  out.getContext('2d').drawImage(source, 0, 0, out.width, out.height);
  return out;
}

/**
 * Grey, with mid-greys pulled toward black (gamma 2): light grey small print and coloured text
 * on tinted table rows are otherwise lost by tesseract's binarisation. Measured on the invoice
 * corpus at 200 dpi: word recall 0.66 plain, 0.95 with this (AWS invoice, grey footnotes).
 */
function prepared(canvas: Canvas, rotation: number): Buffer {
  let out = canvas;
  if (rotation !== 0) {
    const swap = rotation === 90 || rotation === 270;
    out = createCanvas(swap ? canvas.height : canvas.width, swap ? canvas.width : canvas.height);
    const ctx = out.getContext('2d');
    ctx.translate(out.width / 2, out.height / 2);
    ctx.rotate((rotation * Math.PI) / 180);
    ctx.drawImage(canvas, -canvas.width / 2, -canvas.height / 2);
  }
  const px = out.getContext('2d').getImageData(0, 0, out.width, out.height).data;
  // Binary PGM: leptonica reads it as it is, where a PNG of a 300 dpi page cost an encode here and
  // a decode in WebAssembly (measured: 0.81 pages/s with PNG, 1.28 with PGM on 2 cores).
  const header = Buffer.from(`P5\n${out.width} ${out.height}\n255\n`, 'latin1');
  const pgm = Buffer.allocUnsafe(header.length + out.width * out.height);
  header.copy(pgm);
  for (let i = 0, j = header.length; i < px.length; i += 4, j++) pgm[j] = GAMMA[(px[i]! * 77 + px[i + 1]! * 150 + px[i + 2]! * 29) >> 8]!;
  return pgm;
}

const GAMMA = new Uint8Array(256).map((_, i) => Math.round(255 * (i / 255) ** 2));

/**
 * Orientation: read upright first; only a page that reads badly (mean confidence under 60) is
 * read at 90°, 180° and 270° as well, and the most confident reading wins. Chosen over
 * tesseract's OSD, which needs the legacy engine's data (osd.traineddata and a second, larger
 * core): upright pages, the common case, cost one pass, and a rotated page's wrong readings
 * score far lower than its right one. Small skew (a page fed in at 1-2°) tesseract reads as it is:
 * its rotateAuto pass cost 20% of the time and no recall on the corpus scans (0.980 without).
 */
async function recognise(request: OcrRequest): Promise<OcrReply> {
  let canvas: Canvas;
  try {
    canvas = await decode(request);
  } catch (err) {
    const message = (err as Error).message;
    // Under the OS memory cap Skia cannot allocate the pixels (measured: "Create skia surface
    // failed" for an 8000 x 8000 PNG under 512 MB): the page is too large, not corrupt.
    if (/skia surface|alloc|memory/i.test(message)) return { id: request.id, ok: false, code: 'TOO_LARGE', message };
    return { id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: `the image cannot be decoded: ${message}` };
  }
  const w = await tesseract(request.languages);
  let best: { text: string; confidence: number; rotation: number } | null = null;
  for (const rotation of [0, 90, 180, 270]) {
    const { data } = await w.recognize(prepared(canvas, rotation));
    if (!best || data.confidence > best.confidence) best = { text: data.text, confidence: data.confidence, rotation };
    if (rotation === 0 && data.confidence >= UPRIGHT_CONFIDENCE) break;
  }
  return { id: request.id, ok: true, ...best!, width: canvas.width, height: canvas.height };
}

process.on('message', (request: OcrRequest) => {
  recognise(request).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: request.id, ok: false, code: 'OCR_FAILED', message: (err as Error)?.message ?? String(err) } satisfies OcrReply),
  );
});
// The parent going away must not leave a recogniser running.
process.on('disconnect', () => {
  if (worker) fs.rmSync(worker.dir, { recursive: true, force: true });
  process.exit(0);
});
